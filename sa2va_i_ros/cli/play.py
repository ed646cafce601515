"""``sa2va-i-play``: publish a rosbag2 bag into ROS at its recorded timing (``ros2 bag play``, no ROS distro).

    sa2va-i-play BAG [--rate R] [--loop] [--start S] [--remap FROM:=TO ...] [--topics T ...]
                 [--qos reliable|sensor_data] [--wait-for-subscribers SECONDS [--subscribers TOPIC=N ...]]

Messages are published as the bag's CDR bytes (recorded headers untouched, no
re-serialisation), one publisher per topic typed from the bag's type name.
Each message is sent when ``(receive time - bag start) / rate`` has elapsed
since playback began, computed from that start rather than by cumulative
sleeps, so scheduling errors never accumulate. Discovery is never left at the
default: an unset ROS_AUTOMATIC_DISCOVERY_RANGE becomes LOCALHOST (with the
project's Fast DDS profile); an explicit ROS_DOMAIN_ID is respected.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from rosbags.rosbag2 import Reader, ReaderError

from sa2va_i_ros.testing.ros_env import fastdds_profile

QOS_CHOICES = ("reliable", "sensor_data")


def message_class(msgtype: str):
    """The rclpy message class of a rosbag2 type name such as ``sensor_msgs/msg/Image``."""
    parts = msgtype.split("/")
    if len(parts) != 3:
        raise ValueError(f"not a ROS 2 type name: {msgtype!r}")
    pkg, kind, name = parts
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def qos_profile(kind: str):
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

    if kind == "reliable":
        # a deep history: with KEEP_LAST 10, a subscriber lagging 10 messages behind (a node slower than
        # the recording) silently lost the older ones even though the QoS is reliable
        return QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
    if kind == "sensor_data":
        return qos_profile_sensor_data
    raise ValueError(f"qos must be one of {QOS_CHOICES}, got {kind!r}")


def _absolute(topic: str) -> str:
    return topic if topic.startswith("/") else "/" + topic


def parse_remaps(rules) -> dict[str, str]:
    """``["a:=b", ...]`` to ``{"/a": "/b"}`` (names made absolute, as the bag's are)."""
    remap = {}
    for rule in rules or ():
        src, sep, dst = rule.partition(":=")
        if not sep or not src or not dst:
            raise ValueError(f"remap must be FROM:=TO, got {rule!r}")
        remap[_absolute(src)] = _absolute(dst)
    return remap


def parse_counts(rules) -> dict[str, int]:
    """``["/a=2", ...]`` to ``{"/a": 2}`` (``--subscribers``)."""
    counts = {}
    for rule in rules or ():
        topic, sep, n = rule.rpartition("=")
        if not sep or not topic or not n.isdigit() or int(n) < 1:
            raise ValueError(f"--subscribers takes TOPIC=N with N >= 1, got {rule!r}")
        counts[_absolute(topic)] = int(n)
    return counts


class BagPlayer:
    """Replays a bag through publishers of ``node``; ``play()`` blocks (run it in a thread), ``stop()`` ends.

    Publishing needs no executor, so the node may be spun elsewhere or not at all.

    ``topics`` selects bag topics (default all), ``remap`` maps a bag topic to the
    published name, ``start_s`` skips the first seconds of the bag. After the last
    message, ``play()`` waits up to ``ack_timeout_s`` for reliable subscribers to
    acknowledge everything, so that a process exiting right after does not lose the tail.
    """

    def __init__(self, node, bag_path: str | Path, *, rate: float = 1.0, start_s: float = 0.0, topics=None,
                 remap: dict[str, str] | None = None, qos: str = "reliable", loop: bool = False,
                 ack_timeout_s: float = 5.0, stop_event: threading.Event | None = None):
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.bag_path, self.rate, self.loop, self.ack_timeout_s = Path(bag_path), rate, loop, ack_timeout_s
        with Reader(self.bag_path) as reader:
            types = {c.topic: c.msgtype for c in reader.connections}
            self._begin_ns = reader.start_time + round(start_s * 1e9)
            if not (start_s >= 0 and self._begin_ns <= reader.end_time):
                raise ValueError(f"start must be within the bag's {reader.duration / 1e9:.3f} s, "
                                 f"got {start_s}")
        wanted = [_absolute(t) for t in topics] if topics else sorted(types)
        missing = [t for t in wanted if t not in types]
        if missing:
            raise ValueError(f"topics not in {self.bag_path}: {missing} (it has {sorted(types)})")
        remap = remap or {}
        profile = qos_profile(qos)
        self.publishers = {t: node.create_publisher(message_class(types[t]), remap.get(t, t), profile)
                           for t in wanted}
        self._stop = stop_event or threading.Event()
        self.per_topic: Counter[str] = Counter()
        self._lag_sum, self.max_lag_s = 0.0, 0.0

    @property
    def published(self) -> int:
        return sum(self.per_topic.values())

    @property
    def mean_lag_s(self) -> float:
        """Mean delay of a publish call after its target time (the scheduling error, not transport)."""
        return self._lag_sum / self.published if self.published else 0.0

    def stop(self) -> None:
        self._stop.set()

    def wait_for_subscribers(self, timeout_s: float, counts: dict[str, int] | None = None) -> bool:
        """Until every publisher has its matched subscriptions (like a recorder that must not miss the start).

        ``counts`` maps a published topic name to how many subscriptions it
        waits for (default one): a test observing the node's input beside the
        node needs both matched, or it misses the first frames while discovery ends.
        """
        wanted = {t: 1 for t in self.publishers}
        by_name = {p.topic_name: t for t, p in self.publishers.items()}
        for name, n in (counts or {}).items():
            if _absolute(name) not in by_name:
                raise ValueError(f"--subscribers: {name} is not a played topic ({sorted(by_name)})")
            wanted[by_name[_absolute(name)]] = n
        deadline = time.monotonic() + timeout_s
        while not all(p.get_subscription_count() >= wanted[t] for t, p in self.publishers.items()):
            if time.monotonic() >= deadline or self._stop.wait(0.02):
                return False
        return True

    def play(self) -> int:
        """Publish until the end (forever with ``loop``) or ``stop()``; returns the messages published."""
        from rclpy.duration import Duration

        while self._play_once() and self.loop and not self._stop.is_set():
            pass
        if not self._stop.is_set():  # after stop(), leave at once rather than wait for acknowledgements
            for publisher in self.publishers.values():
                publisher.wait_for_all_acked(Duration(seconds=self.ack_timeout_s))
        return self.published

    def _play_once(self) -> int:
        count = 0
        with Reader(self.bag_path) as reader:
            conns = [c for c in reader.connections if c.topic in self.publishers]
            t0 = time.monotonic()
            for conn, stamp, data in reader.messages(connections=conns, start=self._begin_ns):
                target = t0 + (stamp - self._begin_ns) / 1e9 / self.rate
                delay = target - time.monotonic()
                if (delay > 0 and self._stop.wait(delay)) or self._stop.is_set():
                    break
                lag = time.monotonic() - target
                self.publishers[conn.topic].publish(bytes(data))
                self.per_topic[conn.topic] += 1
                self._lag_sum, self.max_lag_s = self._lag_sum + lag, max(self.max_lag_s, lag)
                count += 1
        return count


def ensure_local_discovery(env=os.environ) -> None:
    """Never run with default discovery: an unset range becomes LOCALHOST with the project's DDS profile."""
    if not env.get("ROS_AUTOMATIC_DISCOVERY_RANGE"):
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(fastdds_profile()))


def parse_args(argv) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sa2va-i-play", description=__doc__.split("\n")[0])
    p.add_argument("bag", type=Path, help="rosbag2 directory (mcap or sqlite3)")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1)")
    p.add_argument("--loop", action="store_true", help="start over at the end until interrupted")
    p.add_argument("--start", type=float, default=0.0, help="skip the first S seconds of the bag")
    p.add_argument("--remap", nargs="+", default=[], metavar="FROM:=TO", help="publish topic FROM as TO")
    p.add_argument("--topics", nargs="+", default=None, metavar="T", help="play only these topics")
    p.add_argument("--qos", choices=QOS_CHOICES, default="reliable",
                   help="reliable (keep last 10) or sensor_data (best effort, keep last 5)")
    p.add_argument("--wait-for-subscribers", type=float, default=0.0, metavar="SECONDS",
                   help="wait up to SECONDS until every topic has a subscriber before playing")
    p.add_argument("--subscribers", nargs="+", default=[], metavar="TOPIC=N",
                   help="with --wait-for-subscribers: wait for N subscriptions on TOPIC (published name)")
    return p.parse_args(argv)


def split_ros_args(argv) -> tuple[list[str], list[str]]:
    """Our arguments, and the ``--ros-args ... [--]`` blocks for rcl.

    rclpy's own remove_ros_args would also swallow our ``FROM:=TO`` remaps
    (rcl still reads bare ``a:=b`` as a deprecated remap rule), so rcl gets only the blocks.
    """
    ours, ros, in_ros = [], [], False
    for token in argv:
        if token == "--ros-args":
            in_ros = True
            ros.append(token)
        elif in_ros and token == "--":
            in_ros = False
        else:
            (ros if in_ros else ours).append(token)
    return ours, ros


def main(argv=None) -> int:
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    ours, ros_args = split_ros_args(sys.argv[1:] if argv is None else argv)
    args = parse_args(ours)
    ensure_local_discovery()
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    context = rclpy.Context()
    rclpy.init(args=["sa2va-i-play", *ros_args], context=context,
               signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("sa2va_i_play", context=context)
    try:
        player = BagPlayer(node, args.bag, rate=args.rate, start_s=args.start, topics=args.topics,
                           remap=parse_remaps(args.remap), qos=args.qos, loop=args.loop, stop_event=stop)
        counts = parse_counts(args.subscribers)
        if args.wait_for_subscribers > 0 and not player.wait_for_subscribers(args.wait_for_subscribers, counts):
            print("sa2va-i-play: not every topic has a subscriber; playing anyway", file=sys.stderr)
        t0 = time.monotonic()
        player.play()
        elapsed = time.monotonic() - t0
        topics = ", ".join(f"{player.publishers[t].topic_name}: {n}"
                           for t, n in sorted(player.per_topic.items()))
    except (ValueError, OSError, ImportError, ReaderError) as exc:
        print(f"sa2va-i-play: {exc}", file=sys.stderr)
        return 2
    finally:
        node.destroy_node()
        context.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(f"published {player.published} messages ({topics}) in {elapsed:.3f} s"
          f"{' (stopped)' if stop.is_set() else ''}; scheduling lag mean {player.mean_lag_s * 1e3:.3f} ms, "
          f"max {player.max_lag_s * 1e3:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
