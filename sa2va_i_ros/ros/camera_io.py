"""One camera of the segment node: its subscriptions and their callbacks, its outputs, its input readings.

The node has one ``CameraIO`` per name of its ``cameras`` parameter (one, named
"", by default: today's topics ``image``, ``depth``, ``camera_info`` and
outputs under ``~/``); a named camera subscribes to ``<name>/image``,
``<name>/depth`` and ``<name>/camera_info`` (remappable from the launch file)
and publishes under ``~/<name>/`` (``FramePublisher``). The image callback
hands each frame to the camera's own ``PerceptionWorker`` (one of the node's
``CameraWorkers``: one model for every camera) and never waits on the model.
"""

from __future__ import annotations

import time

from sensor_msgs.msg import CameraInfo

from sa2va_i_ros.imaging.image_codec import ImageDecodeError
from sa2va_i_ros.ros import conversions as conv
from sa2va_i_ros.ros.callbacks import guarded
from sa2va_i_ros.ros.camera_inputs import camera_qos, camera_subscriptions, depth_subscriptions
from sa2va_i_ros.ros.diagnostics import RateMeter
from sa2va_i_ros.ros.frame_publisher import FramePublisher
from sa2va_i_ros.runtime.transport_gate import TransportGate


class CameraIO:
    def __init__(self, node, name: str, frames_group, depth_group):
        self._node, self.name = node, name
        self._counts = node._counts  # shared with the node: /diagnostics reads one set of input counts
        self._groups = frames_group, depth_group
        self.frame_publisher = FramePublisher(node, self._count, name)
        self.worker = None  # this camera's PerceptionWorker while configured
        self.subs: list = []
        self.gate: TransportGate | None = None  # image_transport both: the first copy of a frame wins
        self.images_received = 0  # image callbacks done (whatever became of the image)
        # (stamp_ns, monotonic time) of the newest frame the image callback handed to the worker: recorded here,
        # not on the worker thread, so /diagnostics sees it advance during a long worker step
        self.newest_in: tuple[int, float] | None = None
        self.in_rate = RateMeter()

    @property
    def context(self):  # for ``guarded``
        return self._node.context

    def get_logger(self):  # for ``guarded``
        return self._node.get_logger()

    def _count(self, what: str, message: str) -> None:
        if self.name:
            what, message = f"{self.name}: {what}", f"{self.name}: {message}"
        n = self._counts.add(what)
        self._node.get_logger().warning(f"{message} (x{n})", throttle_duration_sec=5.0)

    # -- activate / deactivate ------------------------------------------------------------------
    def subscribe(self, p: dict) -> None:
        node, (frames, depth) = self._node, self._groups
        profile = camera_qos(p["image_qos"], p["image_queue_depth"])
        transport = p["image_transport"]
        self.gate = TransportGate() if transport == "both" else None
        self.subs = camera_subscriptions(node, transport, self._on_image, profile, frames, self.name)
        self.frame_publisher.start(p["use_depth"], p["depth_sync_tolerance"], p["depth_wait"])
        if p["use_depth"]:
            info = f"{self.name}/camera_info" if self.name else "camera_info"
            self.subs += [*depth_subscriptions(node, transport, self._on_depth, profile, depth, self.name),
                          node.create_subscription(CameraInfo, info, self._on_camera_info, 10, callback_group=depth),
                          node.create_timer(0.02, self._expire_pending, callback_group=depth)]

    def unsubscribe(self) -> None:
        for entity in self.subs:
            if hasattr(entity, "cancel"):
                self._node.destroy_timer(entity)
            else:
                self._node.destroy_subscription(entity)
        self.subs = []

    # -- callbacks ------------------------------------------------------------------------------
    @guarded
    def _on_camera_info(self, msg: CameraInfo) -> None:
        self.frame_publisher.camera_info = msg

    @guarded
    def _on_depth(self, msg) -> None:
        self.frame_publisher.add_depth(msg)

    @guarded
    def _expire_pending(self) -> None:
        self.frame_publisher.expire()

    @guarded
    def _on_image(self, msg, decode) -> None:
        """A colour frame from any transport; ``decode(msg)`` gives its RGB (raw: a view, compressed: decoded).
        ``images_received`` counts it once the callback is done with it (buffered, counted as dropped, ...)."""
        try:
            self._take_image(msg, decode)
        finally:
            self.images_received += 1

    def _take_image(self, msg, decode) -> None:
        worker = self.worker
        if not self._node.active or worker is None:
            return
        t0 = time.perf_counter()
        stamp = conv.stamp_to_ns(msg.header.stamp)
        gate = self.gate
        if gate is not None and gate.taken(stamp):  # the other transport's copy of this frame came first
            return
        self.in_rate.tick()
        try:
            rgb = decode(msg)
        except ImageDecodeError as exc:
            self._count(f"image {type(exc).__name__}", f"image dropped: {exc}")
            return
        try:
            result = worker.offer_frame(conv.copy_header(msg.header), stamp, rgb)
        except ValueError as exc:
            self._count("image rejected", f"image dropped: {exc}")
            return
        if result.pushed:
            self.newest_in = (result.pushed[-1].stamp_ns, time.monotonic())
        if gate is not None and (result.push.accepted or result.push.code == "held"):
            gate.take(stamp)  # buffered, or held by the stamp gate: another copy would only repeat it
        log, named = self._node.get_logger(), f"{self.name}: " if self.name else ""
        if result.clock_reset:
            log.warning(f"{named}image stamps jumped back: {result.push.reason}")
            self.frame_publisher.restart()
        elif result.push.code == "held":  # not dropped: buffered once the change is confirmed (or discarded)
            self._counts.add(f"{named}image held")
            log.info(f"{named}image held: {result.push.reason}", throttle_duration_sec=5.0)
        elif not result.push.accepted:
            self._count(f"image {result.push.code}", f"image dropped: {result.push.reason}")
        elif result.push.code == "size_change":
            log.warning(f"{named}{result.push.reason}")
        if result.frame is not None:
            self.frame_publisher.note_callback(result.frame.stamp_ns, (time.perf_counter() - t0) * 1e3)
