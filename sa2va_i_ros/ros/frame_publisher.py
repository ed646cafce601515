"""What the segment node publishes for the worker: each frame's data topics and markers, and track events.

The worker thread hands ``FramePublisher`` each frame's objects (``output``) and
each track event (``event``): it is the worker's ``Emitter``. Both are handed to
the publisher thread (``PublishQueue``) and the worker goes on at once: building
messages is off its path and outside its locks. With ``use_depth`` a frame's
output waits here for its depth image (``DepthPairer``); then its messages are
built (``outputs.frame_messages``, the overlay and the point cloud only for
subscribers) and published with the source frame's header; their cost is
counted (``publish_ms``). As yolo_ros keeps
its debug drawing apart from its detector node, the node only wires callbacks
and lifecycle transitions to this class, which owns the data publishers and the
state publishing needs (markers shown, depth waiting, output readings).
"""

from __future__ import annotations

import threading
import time

from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from sa2va_i_ros.imaging.geometry import GeometryError
from sa2va_i_ros.imaging.image_codec import ImageDecodeError
from sa2va_i_ros.msg import TrackedObjectArray, TrackEvent
from sa2va_i_ros.ros import conversions as conv
from sa2va_i_ros.ros.callbacks import while_up
from sa2va_i_ros.ros.depth_pairing import DepthPairer
from sa2va_i_ros.ros.diagnostics import Percentiles, RateMeter
from sa2va_i_ros.ros.markers import MarkerBook
from sa2va_i_ros.ros.outputs import frame_messages
from sa2va_i_ros.ros.publish_queue import PublishQueue

EVENT_KINDS = {"started": TrackEvent.STARTED, "lost": TrackEvent.LOST, "found": TrackEvent.FOUND,
               "stopped": TrackEvent.STOPPED, "regrounded": TrackEvent.REGROUNDED, "gave_up": TrackEvent.GAVE_UP}
# reliable and deep: when a track starts, the frames that arrived during grounding may come out in one burst;
# a KEEP_LAST history shorter than that burst drops outputs a consumer has not acked
RELIABLE_DEEP = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
# heavy_outputs_qos sensor_data: the overlay and the cloud are dropped, not queued, on a link that cannot keep up
SENSOR_DATA = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)


class FramePublisher:
    """One camera's output topics and what publishing them needs; ``count(what, message)`` counts a problem.

    ``camera``: the camera's name (the node's ``cameras``): its topics are ``~/<camera>/...`` and its objects
    carry the name; "" (one camera, the default): ``~/...``.
    """

    def __init__(self, node, count, camera: str = ""):
        self._node, self._count, self.camera = node, count, camera
        self.prefix = f"~/{camera}/" if camera else "~/"
        self.events_pub = node.create_publisher(TrackEvent, self.prefix + "events", QoSProfile(depth=100))
        # a plain publisher, as ~/events: a track's DELETE markers must reach RViz whenever it ends (cleanup
        # and deactivate included), not only while the lifecycle publishers are active
        self.markers_pub = node.create_publisher(MarkerArray, self.prefix + "markers", RELIABLE_DEEP)
        self.pubs: dict = {}  # the data topics' lifecycle publishers, while configured
        self.markers = MarkerBook()
        self.pairer = DepthPairer()
        self.use_depth = False
        self.camera_info: CameraInfo | None = None
        self.lock = threading.Lock()  # the depth pairer and the markers: worker thread and depth callbacks
        self.rate = RateMeter()
        self.last_output_at: float | None = None  # monotonic time of the newest objects message published
        self.last_output_ns = -1  # stamp of the newest objects message published (-1: none yet)
        self._callback_ms: dict[int, float] = {}  # stamp -> image callback time (decode + hand-over), recent
        self._callback_lock = threading.Lock()  # _callback_ms: the image callback adds, the worker thread takes
        # per frame, on the worker's path: its image callback + handing its output to the publisher thread
        self.overhead_ms = Percentiles()
        self.publish_ms = Percentiles()  # per frame, on the publisher thread: building and publishing its messages
        self.queue = PublishQueue(lambda: count("outputs dropped",
                                                "publisher thread behind: the oldest frame output was dropped"))

    @property
    def context(self):
        """The node's context (``while_up`` asks it whether the process is shutting down)."""
        return self._node.context

    # -- lifecycle (called by the node's transitions) ----------------------------------------------
    def create_publishers(self) -> None:
        """configure: the data topics, as lifecycle publishers (they go live with the node)."""
        node = self._node
        heavy = SENSOR_DATA if node.get_parameter("heavy_outputs_qos").value == "sensor_data" else RELIABLE_DEEP
        at = self.prefix
        self.pubs = {
            "objects": node.create_lifecycle_publisher(TrackedObjectArray, at + "objects", RELIABLE_DEEP),
            "mask": node.create_lifecycle_publisher(Image, at + "mask", RELIABLE_DEEP),
            "points": node.create_lifecycle_publisher(PointCloud2, at + "object_points", heavy),
            "overlay": node.create_lifecycle_publisher(Image, at + "overlay", heavy),
        }

    def start(self, use_depth: bool, tolerance_s: float, wait_s: float) -> None:
        """activate: with depth, each output waits up to ``wait_s`` for a depth within ``tolerance_s``."""
        if use_depth:
            self.pairer = DepthPairer(round(tolerance_s * 1e9), wait_s)
        self.use_depth = use_depth

    def stop(self, header: Header) -> None:
        """deactivate: what waits for depth goes out now; no more outputs, so RViz forgets the markers."""
        self.queue.drain()
        with self.lock:
            self._publish_ready(self.pairer.flush())
            self._publish_markers(self.markers.clear(header))

    def release(self, header: Header) -> None:
        """cleanup/shutdown (after the worker closed): markers deleted, data publishers and waiting outputs gone."""
        self.queue.drain()  # the worker's last outputs and STOPPED events go out first
        with self.lock:
            self._publish_markers(self.markers.clear(header))
        for pub in self.pubs.values():
            self._node.destroy_lifecycle_publisher(pub)
        self.pubs = {}
        self.pairer.clear()
        self.camera_info = None

    def restart(self) -> None:
        """The image stamps jumped back: publish what waits for depth, then forget the old depth images."""
        with self.lock:
            self._publish_ready(self.pairer.flush())
            self.pairer.clear()

    # -- depth inputs (the node's depth callbacks) -------------------------------------------------
    def add_depth(self, msg) -> None:
        with self.lock:
            self._publish_ready(self.pairer.add_depth(conv.stamp_to_ns(msg.header.stamp), msg))

    def expire(self) -> None:
        """Outputs that waited ``depth_wait`` go out, without 3D when their depth never came."""
        with self.lock:
            ready = self.pairer.expire()
            for _, depth in ready:
                if depth is None:
                    self._count("no depth", "no depth image within depth_sync_tolerance of a frame: no 3D output")
            self._publish_ready(ready)

    # -- readings ---------------------------------------------------------------------------------
    def note_callback(self, stamp_ns: int, ms: float) -> None:
        """The image callback's time for a buffered frame: part of that frame's overhead once published."""
        with self._callback_lock:
            self._callback_ms[stamp_ns] = ms
            while len(self._callback_ms) > 256:
                self._callback_ms.pop(next(iter(self._callback_ms)))

    def published(self) -> dict:
        """Outputs still waiting for depth and the newest objects message's stamp (for /diagnostics)."""
        with self.lock:
            waiting = len(self.pairer)
        return {"outputs_pending": waiting + self.queue.pending, "last_output_stamp_ns": self.last_output_ns}

    # -- the worker's Emitter (worker thread): handed to the publisher thread ----------------------
    def output(self, out, frame) -> None:
        """A frame's objects: published by the publisher thread (now, or once its depth image arrives)."""
        t0 = time.perf_counter()
        self.queue.put(lambda: self._output(out, frame), frame=True)
        with self._callback_lock:
            callback_ms = self._callback_ms.pop(frame.stamp_ns, None)
        if callback_ms is not None:
            self.overhead_ms.add(callback_ms + (time.perf_counter() - t0) * 1e3)

    def event(self, header, track_id: int, query: str, kind: str, score: float) -> None:
        self.queue.put(lambda: self._event(header, track_id, query, kind, score), frame=False)

    # -- the publisher thread ----------------------------------------------------------------------
    @while_up
    def _output(self, out, frame) -> None:
        t0 = time.perf_counter()
        rgb = None
        if self._node.get_parameter("publish_overlay").value and "overlay" in self.pubs \
                and self.pubs["overlay"].get_subscription_count() > 0:  # rendered only for subscribers
            rgb = _camera_rgb(frame)
        with self.lock:
            if self.use_depth:
                self._publish_ready(self.pairer.add_output(frame.stamp_ns, (out, rgb)))
            else:
                self._publish_frame(out, rgb, None)
        self.publish_ms.add((time.perf_counter() - t0) * 1e3)

    @while_up
    def _event(self, header, track_id: int, query: str, kind: str, score: float) -> None:
        header = conv.copy_header(header) if header is not None else Header()
        self.events_pub.publish(TrackEvent(header=header, track_id=track_id, query=query, event=EVENT_KINDS[kind],
                                           score=float(score)))
        if kind == "stopped":  # stopped, replaced, cleaned up: RViz forgets it even if no frame follows
            with self.lock:
                self._publish_markers(self.markers.stop(header, [track_id]))

    # -- publishing (with the lock held) -----------------------------------------------------------
    def _publish_ready(self, ready) -> None:
        for (out, rgb), depth_msg in ready:
            self._publish_frame(out, rgb, depth_msg)

    def _publish_markers(self, markers) -> None:
        if markers is not None:
            self.markers_pub.publish(markers)

    def _depth_for(self, depth_msg):
        """Depth (metres) and intrinsics for a frame, or (None, None) with the reason counted."""
        if depth_msg is None:  # the intrinsics still place the labels (markers.label_on_plane)
            try:
                return None, conv.camera_info_to_intrinsics(self.camera_info) if self.camera_info else None
            except GeometryError:
                return None, None
        if self.camera_info is None:
            self._count("no camera_info", "no camera_info received: 3D output skipped")
            return None, None
        try:
            return conv.any_to_depth(depth_msg), conv.camera_info_to_intrinsics(self.camera_info)
        except (ImageDecodeError, GeometryError) as exc:
            self._count(f"depth {type(exc).__name__}", f"depth unusable: {exc}")
            return None, None

    def _publish_frame(self, out, rgb, depth_msg=None) -> None:
        pubs = self.pubs
        if not pubs or not pubs["objects"].is_activated:
            return  # inactive (or cleaned up): lifecycle publishers would drop it anyway
        depth, intrinsics = self._depth_for(depth_msg)
        msgs = frame_messages(out, rgb, depth, intrinsics, self._node.get_parameter("max_points").value,
                              cloud=pubs["points"].get_subscription_count() > 0,  # the cloud for subscribers
                              object_masks=self._node.get_parameter("objects_with_masks").value,
                              depth_frame_id=depth_msg.header.frame_id if depth is not None else None)
        for problem in msgs.problems:
            self._count("depth mismatch", problem)
        for obj in msgs.objects.objects:
            obj.camera = self.camera
        pubs["objects"].publish(msgs.objects)
        pubs["mask"].publish(msgs.mask)
        if msgs.points is not None:
            pubs["points"].publish(msgs.points)
        if msgs.overlay is not None:
            pubs["overlay"].publish(msgs.overlay)
        self._publish_markers(self.markers.frame(out.header, msgs.marked))
        self.rate.tick()
        self.last_output_ns = conv.stamp_to_ns(out.header.stamp)
        self.last_output_at = time.monotonic()


def _camera_rgb(frame):
    """The frame at the camera's size (the buffer may hold a downscaled copy)."""
    from sa2va_i_ros.runtime.catch_up import resized

    return resized(frame.rgb, frame.size)
