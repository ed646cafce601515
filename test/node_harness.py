"""A segment node in this process, driven through real ROS topics, services and actions.

The node runs exactly as in production: its own executor from
``segment_node.make_executor`` (the production thread count), the default
parameters (sensor-data image QoS, queue depth 2) unless a test is about
another setting. The client node (publishers, subscriptions, service and
action clients: the observer) has its own executor and may use deeper queues.
Both share one rclpy context per harness; every message still goes through
DDS. The network rule is applied by conftest.py.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from frames import SIZE, frame_rgb, stamp_ns
from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from sa2va_i_ros.action import SegmentAndTrack
from sa2va_i_ros.msg import TrackedObjectArray, TrackEvent
from sa2va_i_ros.ros.conversions import ns_to_stamp
from sa2va_i_ros.ros.segment_node import SegmentNode, make_executor
from sa2va_i_ros.srv import Segment, StopTracking

OBSERVER = QoSProfile(depth=500, reliability=ReliabilityPolicy.RELIABLE)  # the observer's queues, not the node's


def image_msg(i: int, size=SIZE, encoding="rgb8", frame_id="camera_color_optical_frame", stamp: int | None = None
              ) -> Image:
    rgb = frame_rgb(i, size)
    msg = Image(height=size[0], width=size[1], encoding=encoding, step=size[1] * 3, data=rgb.tobytes())
    msg.header.stamp = ns_to_stamp(stamp_ns(i) if stamp is None else stamp)
    msg.header.frame_id = frame_id
    return msg


def depth_msg(i: int, size=SIZE, metres: float = 0.8) -> Image:
    depth = np.full(size, int(metres * 1000), np.uint16)
    msg = Image(height=size[0], width=size[1], encoding="16UC1", step=size[1] * 2, data=depth.tobytes())
    msg.header.stamp = ns_to_stamp(stamp_ns(i))
    msg.header.frame_id = "camera_color_optical_frame"
    return msg


def camera_info(size=SIZE) -> CameraInfo:
    h, w = size
    f = 100.0
    return CameraInfo(height=h, width=w, distortion_model="plumb_bob", d=[0.0] * 5,
                      k=[f, 0.0, w / 2, 0.0, f, h / 2, 0.0, 0.0, 1.0],
                      r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0], p=[f, 0.0, w / 2, 0, 0.0, f, h / 2, 0, 0.0, 0.0, 1.0, 0])


@dataclass
class Hold:
    entered: threading.Event  # the worker is inside the held grounding step
    release: threading.Event


class NodeHarness:
    def __init__(self, model_dir, name: str = "sa2va_i", **params):
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        params = {"model": str(model_dir), **params}
        # the inputs are remapped per node, as a launch file would: harnesses alive at once never cross-talk
        remaps = [a for topic in ("image", "depth", "camera_info") for a in ("-r", f"{topic}:=/{name}/{topic}")]
        self.node = SegmentNode(name, context=self.ctx, cli_args=["--ros-args", *remaps],
                                parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        self.client = rclpy.create_node("test_client", context=self.ctx)
        self.executor = make_executor(self.ctx)
        self.executor.add_node(self.node)
        self.client_executor = SingleThreadedExecutor(context=self.ctx)
        self.client_executor.add_node(self.client)
        c = self.client
        self.image_pub = c.create_publisher(Image, f"/{name}/image", OBSERVER)
        self.depth_pub = c.create_publisher(Image, f"/{name}/depth", OBSERVER)
        self.info_pub = c.create_publisher(CameraInfo, f"/{name}/camera_info", OBSERVER)
        self.got: dict[str, list] = {k: [] for k in ("objects", "mask", "points", "overlay", "events", "diag")}
        n = f"/{name}"
        for key, typ, topic in (("objects", TrackedObjectArray, f"{n}/objects"), ("mask", Image, f"{n}/mask"),
                                ("points", PointCloud2, f"{n}/object_points"), ("overlay", Image, f"{n}/overlay"),
                                ("events", TrackEvent, f"{n}/events"), ("diag", DiagnosticArray, "/diagnostics")):
            c.create_subscription(typ, topic, self.got[key].append, OBSERVER)
        self.segment_client = c.create_client(Segment, f"{n}/segment", qos_profile=OBSERVER)
        self.stop_client = c.create_client(StopTracking, f"{n}/stop_tracking", qos_profile=OBSERVER)
        self.action_client = ActionClient(c, SegmentAndTrack, f"{n}/segment_and_track")
        # spin only once every entity exists: an ActionClient built while its node spins can be seen by the
        # executor before its lock exists ("'ActionClient' object has no attribute '_lock'" killed the
        # client's spin thread in CI, so no reply was ever heard)
        self._threads = [threading.Thread(target=e.spin, daemon=True)
                         for e in (self.executor, self.client_executor)]
        for t in self._threads:
            t.start()

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        assert self.node.trigger_configure().name == "SUCCESS"
        assert self.node.trigger_activate().name == "SUCCESS"
        self.wait_for(lambda: self.image_pub.get_subscription_count() > 0, "node subscribed to /image")
        for key, pub in self.node.frame_publisher.pubs.items():  # the observer hears every output topic
            self.wait_for(lambda pub=pub: pub.get_subscription_count() > 0, f"observer subscribed to {key}")

    def close(self) -> None:
        """Executors down, the node's workers closed, every entity destroyed (other harnesses reuse this)."""
        for e in (self.executor, self.client_executor):
            e.shutdown()
        for t in self._threads:
            t.join(5)
        if self.node.workers is not None:
            self.node.workers.close("test over")
        if getattr(self, "action_client", None) is not None:
            self.action_client.destroy()
        self.client.destroy_node()
        self.node.destroy_node()
        self.ctx.try_shutdown()

    # -- helpers ----------------------------------------------------------------------------------
    @staticmethod
    def wait_for(predicate, what: str, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for: {what}")

    def send(self, msg: Image) -> None:
        """Publish one image and wait until the node's image callback has run on it (whatever it decided):
        the node's queue is the production one (depth 2), so a test never outruns it."""
        before = self.node.images_received
        self.image_pub.publish(msg)
        self.wait_for(lambda: self.node.images_received > before, "the node to take the image")

    def publish_frames(self, start: int, stop: int, period: float = 0.0, **kw) -> None:
        for i in range(start, stop):
            self.send(image_msg(i, **kw))
            if period:
                time.sleep(period)

    def send_with_depth(self, i: int) -> None:
        self.depth_pub.publish(depth_msg(i))
        self.send(image_msg(i))

    def track_frames(self, start: int, stop: int, depth: bool = False) -> None:
        """Publish frames one at a time, each once the worker is done with the previous one (no frame is
        dropped as stale: these tests are not about load)."""
        for i in range(start, stop):
            self.send_with_depth(i) if depth else self.send(image_msg(i))
            self.wait_for(self.idle, f"the worker to process frame {i}")

    @contextlib.contextmanager
    def hold_grounding(self):
        """The next grounding's first step blocks the worker thread until ``release`` is set (or the worker
        closes): a long model call, made deterministic."""
        engine, worker = self.node.session.engine, self.node.worker
        hold, original = Hold(threading.Event(), threading.Event()), engine.ground_steps

        def held(*args, **kwargs):
            hold.entered.set()
            while not hold.release.is_set() and not worker.closed:
                time.sleep(0.01)
            yield "held"
            return (yield from original(*args, **kwargs))

        engine.ground_steps = held
        try:
            yield hold
        finally:
            hold.release.set()
            engine.ground_steps = original

    @contextlib.contextmanager
    def hold_catch_up_until_cancel(self):
        """Frames after the grounding window wait in the catch-up until the running request is cancelled (a
        request cancelled while its tracks catch up, made deterministic)."""
        tracker, worker = self.node.session.tracker, self.node.worker
        original = tracker.advance_object

        def advance(prepared, **kw):
            if kw.get("window_index") is None:
                self.wait_for(lambda: worker.job is not None and worker.job.ticket.cancelled, "the cancel")
            return original(prepared, **kw)

        tracker.advance_object = advance
        try:
            yield
        finally:
            tracker.advance_object = original

    def state(self) -> str:
        """The node's lifecycle state, through its get_state service."""
        from lifecycle_msgs.srv import GetState

        client = self.client.create_client(GetState, f"/{self.node.get_name()}/get_state")
        try:
            return self.call(client, GetState.Request()).current_state.label
        finally:
            self.client.destroy_client(client)

    def reset(self) -> None:
        """Back to no track, no buffered frame, no remembered stamp and nothing received (between the tests of a
        module-scoped harness: the next test reuses the same stamps)."""
        node = self.node
        if node.worker is not None:
            node.worker.stop(0)
            self.wait_for(self.idle, "the worker to settle")
            node.worker.clear_frames()
            self.wait_for(self.idle, "the worker to forget the frames")
        for io in node.cameras.values():
            io.frame_publisher.pairer.clear()
            io.newest_in = None
            if io.gate is not None:
                io.gate.clear()
        for msgs in self.got.values():
            msgs.clear()

    def buffered(self) -> int:
        return len(self.node.session.buffer) if self.node.session else 0

    def idle(self) -> bool:
        """The worker has nothing left to do (no request, no frame waiting) and its outputs are published."""
        w = self.node.worker
        return (w is None or (w.job is None and not w.intake and not w._inbox and not w._live_ready())) \
            and not self.node.frame_publisher.queue.pending

    def call(self, client, request, timeout: float = 120.0):
        """One service call. ``service_is_ready`` only says the client found the server; the server must
        also have found the client's reply reader, or a quick reply can be lost on a loaded machine
        (rmw_fastrtps waits only a bounded time for that match before it drops a response): so wait
        until the node's own graph counts the client too."""
        self.wait_for(client.service_is_ready, f"service {client.srv_name}")
        if client.srv_name.startswith(f"/{self.node.get_name()}/"):
            self.wait_for(lambda: self.node.count_clients(client.srv_name) > 0,
                          f"the node to discover the client of {client.srv_name}")
        future = client.call_async(request)
        self.wait_for(future.done, f"reply of {client.srv_name}", timeout)
        return future.result()

    def action_ready(self) -> None:
        """The action server is up and the node hears this client's feedback subscription: feedback published
        before that match is lost (``wait_for_server`` only checks the action's services)."""
        assert self.action_client.wait_for_server(60)
        feedback = f"/{self.node.get_name()}/segment_and_track/_action/feedback"
        self.wait_for(lambda: self.node.count_subscribers(feedback) > 0, f"the node to hear {feedback}")

    def segment(self, query="the cup left of the bowl", **kw):
        return self.call(self.segment_client, Segment.Request(query=query, **kw))

    def stop(self, track_id: int = 0):
        return self.call(self.stop_client, StopTracking.Request(track_id=track_id))
