"""The observer: the replay's third process, beside the node and the player.

It subscribes to the camera and to every output of the node, sends the query
over ``~/segment`` once ``query_after`` camera frames were seen, and once the
player ended waits until the node reports on /diagnostics that it is done with
the last played frame, or with the last frame it received when the last played
ones never reached it (``settled_report``). It imports rclpy only when built.
"""

from __future__ import annotations

import time

from sa2va_i_ros.testing.node_client import call, configure_and_activate, spin_until
from sa2va_i_ros.testing.replay.checks import node_counts, settled_report
from sa2va_i_ros.testing.replay.options import ReplayOptions, observed_camera_topic
from sa2va_i_ros.testing.replay.result import ReplayResult, stamp_ns


class Observer:
    """The third process's side: subscriptions, the query, waiting for the node's last outputs."""

    def __init__(self, opts: ReplayOptions, domain_id: int | None = None):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CompressedImage, Image, PointCloud2
        from visualization_msgs.msg import MarkerArray

        from sa2va_i_ros.msg import TrackedObjectArray, TrackEvent
        from sa2va_i_ros.srv import Segment

        self.opts, self.result = opts, ReplayResult()
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=domain_id)
        self.node = rclpy.create_node("replay_observer", context=self.ctx)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        r, n, qos = self.result, f"/{opts.node_name}", QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        self.diagnostics: list = []  # (receive time, counts of the node's output status)

        def keep(store, times=None):
            def callback(msg):
                stamp = stamp_ns(msg.header)
                store[stamp] = msg
                if times is not None:
                    times[stamp] = time.monotonic()
            return callback

        def camera(msg):
            r.camera_headers[stamp_ns(msg.header)] = msg.header
            r.camera_times[stamp_ns(msg.header)] = time.monotonic()

        sub = self.node.create_subscription
        sub(CompressedImage if opts.compressed else Image, observed_camera_topic(opts), camera, qos)
        sub(TrackedObjectArray, f"{n}/objects", keep(r.objects, r.object_times), qos)
        sub(Image, f"{n}/mask", keep(r.masks), qos)
        sub(PointCloud2, f"{n}/object_points", keep(r.points), qos)
        sub(TrackEvent, f"{n}/events", r.events.append, qos)
        sub(DiagnosticArray, "/diagnostics", self._diagnostics, qos)
        if opts.want_overlay:
            sub(Image, f"{n}/overlay", keep(r.overlays), qos)
        if opts.want_markers:
            sub(MarkerArray, f"{n}/markers", r.markers.append, qos)
        self.segment = self.node.create_client(Segment, f"{n}/segment")
        self._request = Segment.Request

    def _diagnostics(self, msg) -> None:
        for st in msg.status:
            if st.name.endswith(f"{self.opts.node_name}: output"):
                self.diagnostics.append((time.monotonic(), {kv.key: kv.value for kv in st.values}))

    def wait_for_outputs(self, timeout: float = 60.0) -> None:
        """Until each output topic hears the node (after configure): no message is lost to late discovery."""
        for sub in self.node.subscriptions:
            if sub.topic_name.startswith(f"/{self.opts.node_name}/") and \
                    not self.spin(lambda sub=sub: sub.get_publisher_count() > 0, timeout):
                raise RuntimeError(f"the node's {sub.topic_name} did not appear")

    def spin(self, predicate, timeout: float) -> bool:
        return spin_until(self.executor, predicate, timeout)

    def activate(self) -> None:
        """configure + activate through the node's lifecycle services (the launch file does it itself)."""
        configure_and_activate(self.node, self.executor, self.opts.node_name)

    def live_frames(self) -> int:
        """Frames the node reports it tracked live (its latest /diagnostics)."""
        return int(self.diagnostics[-1][1].get("frames_live", 0)) if self.diagnostics else 0

    def query_and_collect(self, player_done, stop_player=None) -> ReplayResult:
        """Send the query after ``query_after`` frames, then collect until the node answered the last frame."""
        opts, r = self.opts, self.result
        if not self.spin(lambda: len(r.camera_headers) >= opts.query_after, opts.timeout_s):
            raise RuntimeError(f"only {len(r.camera_headers)} camera frames arrived")
        r.query_sent_after = len(r.camera_headers)
        r.query_time = time.monotonic()
        r.reply = call(self.executor, self.segment, self._request(query=opts.query, track=True),
                       "the segment request", opts.timeout_s)
        r.reply_time = time.monotonic()
        def enough() -> bool:
            return bool(opts.stop_after_live) and self.live_frames() >= opts.stop_after_live

        self.spin(lambda: player_done() or enough(), opts.timeout_s)
        if not player_done() and stop_player is not None:
            stop_player()
            self.spin(player_done, 30.0)
        player_end = time.monotonic()
        last = max(r.camera_headers, default=-1)
        done = lambda: settled_report(self.diagnostics, last, player_end, r.objects, r.masks)  # noqa: E731
        if self.spin(lambda: done() is not None, opts.timeout_s):
            r.node_newest, r.node_counts = done()
        else:  # a hang: check_replay tells what is missing
            self._final_counts()
        return r

    def _final_counts(self) -> None:
        """The node's counts from a /diagnostics message received after now (when it never settled)."""
        after = time.monotonic()
        self.spin(lambda: any(t > after for t, _ in self.diagnostics), 10.0)
        if self.diagnostics:
            self.result.node_counts = node_counts(self.diagnostics[-1][1])

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.ctx.try_shutdown()
