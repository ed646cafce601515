"""Replay a bag into a segment node process, ask a query mid-stream, collect what the node publishes.

Shared by the bag integration tests (which assert on the result) and ``make
demo`` (which summarises it). Three processes, as on a robot: the node
(``segment_node`` with the launch file's parameters file, or ``ros2 launch``
when a ROS distro is present), the player (``sa2va-i-play``, or ``ros2 bag
play``), and this one, which subscribes to the camera and to every output and
calls ``~/segment`` once ``query_after`` frames have been seen. All of them run
under the network rule (``tools/ros_env.py``).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sa2va_i_ros.synthetic.bag_writer import COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC
from sa2va_i_ros.tools.ros_env import local_ros_env

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ReplayOptions:
    bag: Path
    model: Path
    query: str = "the cup left of the bowl"
    query_after: int = 20  # frames seen before the query is sent
    use_depth: bool = True
    node_name: str = "sa2va_i"
    rate: float = 1.0
    timeout_s: float = 180.0
    want_overlay: bool = False  # subscribe to ~/overlay (the node renders it only for subscribers)
    params: dict = field(default_factory=dict)  # overrides on top of config/segment.yaml


@dataclass
class ReplayResult:
    reply: object = None  # Segment.Response
    camera_headers: dict = field(default_factory=dict)  # stamp_ns -> header of each camera frame seen here
    camera_times: dict = field(default_factory=dict)  # stamp_ns -> monotonic receive time here
    objects: dict = field(default_factory=dict)  # stamp_ns -> TrackedObjectArray
    object_times: dict = field(default_factory=dict)  # stamp_ns -> monotonic receive time here
    masks: dict = field(default_factory=dict)  # stamp_ns -> Image
    points: dict = field(default_factory=dict)  # stamp_ns -> PointCloud2
    overlays: dict = field(default_factory=dict)  # stamp_ns -> Image
    events: list = field(default_factory=list)
    query_sent_after: int = 0  # camera frames seen when the query was sent
    reply_time: float = 0.0  # monotonic time the reply arrived here
    node_log: str = ""
    player_log: str = ""
    node_returncode: int | None = None

    def latencies_ms(self, live_only: bool = False) -> list[float]:
        """Camera frame seen here -> its objects message seen here, sorted.

        Frames that arrived while the query was grounded come out once the new
        track has caught up; ``live_only`` keeps the frames that arrived after the reply.
        """
        return sorted((self.object_times[s] - self.camera_times[s]) * 1e3 for s in self.object_times
                      if s in self.camera_times and (not live_only or self.camera_times[s] > self.reply_time))


def _params_file() -> Path:
    from sa2va_i_ros.tools.ros_env import fastdds_profile

    return fastdds_profile().parent / "segment.yaml"


def node_command(opts: ReplayOptions) -> list[str]:
    """The executable with the same parameters file and remaps the launch file passes."""
    params = {"model": str(opts.model), "device": "cpu", "use_depth": opts.use_depth, **opts.params}
    cmd = [sys.executable, "-m", "sa2va_i_ros.ros.segment_node", "--ros-args", "-r", f"__node:={opts.node_name}",
           "--params-file", str(_params_file()),
           "-r", f"image:={COLOR_TOPIC}", "-r", f"depth:={DEPTH_TOPIC}", "-r", f"camera_info:={INFO_TOPIC}"]
    for key, value in params.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        cmd += ["-p", f"{key}:={text}"]
    return cmd


def _spin(executor, predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        executor.spin_once(timeout_sec=0.02)
    return predicate()


def _drain(executor, result, quiet_s: float, timeout: float) -> None:
    """Wait until the node has answered the last camera frame, or stayed quiet for ``quiet_s``.

    On a slow machine the node may lag the recording; stopping it when the player
    ends would cut its last outputs.
    """
    last = max(result.camera_headers, default=None)
    end = time.monotonic() + timeout
    seen, quiet_since = len(result.objects), time.monotonic()
    while time.monotonic() < end and last not in result.objects:
        executor.spin_once(timeout_sec=0.05)
        if len(result.objects) != seen:
            seen, quiet_since = len(result.objects), time.monotonic()
        elif time.monotonic() - quiet_since > quiet_s:
            break
    _spin(executor, lambda: False, 0.3)


def _activate(executor, node, name: str) -> None:
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    client = node.create_client(ChangeState, f"/{name}/change_state")
    if not _spin(executor, client.service_is_ready, 60):
        raise RuntimeError("the node's lifecycle service did not appear")
    for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
        future = client.call_async(ChangeState.Request(transition=Transition(id=transition)))
        if not _spin(executor, future.done, 120) or not future.result().success:
            raise RuntimeError(f"lifecycle transition {transition} failed")


def run_replay(opts: ReplayOptions) -> ReplayResult:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, PointCloud2

    from sa2va_i_ros.msg import TrackedObjectArray, TrackEvent
    from sa2va_i_ros.ros.conversions import stamp_to_ns
    from sa2va_i_ros.srv import Segment

    env = local_ros_env()
    result = ReplayResult()
    node_proc = subprocess.Popen(node_command(opts), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True)
    player = None
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=int(env["ROS_DOMAIN_ID"]))
    node = rclpy.create_node("replay_observer", context=ctx)
    executor = rclpy.executors.SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    reliable = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)

    def keep(store, times=None):
        def callback(msg):
            stamp = stamp_to_ns(msg.header.stamp)
            store[stamp] = msg
            if times is not None:
                times[stamp] = time.monotonic()
        return callback

    n = f"/{opts.node_name}"
    node.create_subscription(Image, COLOR_TOPIC, lambda m: (result.camera_headers.__setitem__(
        stamp_to_ns(m.header.stamp), m.header), result.camera_times.__setitem__(stamp_to_ns(m.header.stamp),
                                                                               time.monotonic())), reliable)
    node.create_subscription(TrackedObjectArray, f"{n}/objects", keep(result.objects, result.object_times), reliable)
    node.create_subscription(Image, f"{n}/mask", keep(result.masks), reliable)
    node.create_subscription(PointCloud2, f"{n}/object_points", keep(result.points), reliable)
    if opts.want_overlay:
        node.create_subscription(Image, f"{n}/overlay", keep(result.overlays), reliable)
    node.create_subscription(TrackEvent, f"{n}/events", result.events.append, reliable)
    segment = node.create_client(Segment, f"{n}/segment")
    try:
        _activate(executor, node, opts.node_name)
        player = subprocess.Popen(
            [sys.executable, "-m", "sa2va_i_ros.tools.play", str(opts.bag), "--qos", "reliable",
             "--rate", str(opts.rate), "--wait-for-subscribers", "20"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if not _spin(executor, lambda: len(result.camera_headers) >= opts.query_after, opts.timeout_s):
            raise RuntimeError(f"only {len(result.camera_headers)} camera frames arrived")
        _spin(executor, segment.service_is_ready, 30)
        result.query_sent_after = len(result.camera_headers)
        future = segment.call_async(Segment.Request(query=opts.query, track=True))
        if not _spin(executor, future.done, opts.timeout_s):
            raise RuntimeError("no reply to the segment request")
        result.reply, result.reply_time = future.result(), time.monotonic()
        _spin(executor, lambda: player.poll() is not None, opts.timeout_s)
        _drain(executor, result, quiet_s=3.0, timeout=opts.timeout_s)
    finally:
        executor.shutdown()
        node.destroy_node()
        ctx.try_shutdown()
        if player is not None:
            if player.poll() is None:
                player.send_signal(signal.SIGINT)
            result.player_log = player.communicate(timeout=30)[0]
        node_proc.send_signal(signal.SIGINT)
        try:
            result.node_log = node_proc.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            node_proc.kill()
            result.node_log = node_proc.communicate()[0]
        result.node_returncode = node_proc.returncode
    return result
