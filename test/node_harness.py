"""A segment node in this process, driven through real ROS topics, services and actions.

The node and a client node share one rclpy context (each harness its own) and a
multi-threaded executor spinning in a background thread; every message still
goes through DDS. The network rule is applied by conftest.py.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from frames import SIZE, frame_rgb, stamp_ns
from rclpy.action import ActionClient
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from sa2va_i_ros.action import SegmentAndTrack
from sa2va_i_ros.msg import TrackedObjectArray, TrackEvent
from sa2va_i_ros.ros.conversions import ns_to_stamp
from sa2va_i_ros.ros.segment_node import SegmentNode
from sa2va_i_ros.srv import Segment, StopTracking

RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


def image_msg(i: int, size=SIZE, encoding="rgb8", frame_id="camera_color_optical_frame") -> Image:
    rgb = frame_rgb(i, size)
    msg = Image(height=size[0], width=size[1], encoding=encoding, step=size[1] * 3, data=rgb.tobytes())
    msg.header.stamp = ns_to_stamp(stamp_ns(i))
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


class NodeHarness:
    def __init__(self, model_dir, name: str = "sa2va_i", **params):
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        params = {"model": str(model_dir), "image_qos": "reliable", "image_queue_depth": 50, **params}
        self.node = SegmentNode(name, context=self.ctx,
                                parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        self.client = rclpy.create_node("test_client", context=self.ctx)
        self.executor = MultiThreadedExecutor(num_threads=6, context=self.ctx)
        self.executor.add_node(self.node)
        self.executor.add_node(self.client)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()
        c = self.client
        self.image_pub = c.create_publisher(Image, "/image", RELIABLE)
        self.depth_pub = c.create_publisher(Image, "/depth", RELIABLE)
        self.info_pub = c.create_publisher(CameraInfo, "/camera_info", RELIABLE)
        self.got: dict[str, list] = {k: [] for k in ("objects", "mask", "points", "overlay", "events", "diag")}
        n = f"/{name}"
        for key, typ, topic in (("objects", TrackedObjectArray, f"{n}/objects"), ("mask", Image, f"{n}/mask"),
                                ("points", PointCloud2, f"{n}/object_points"), ("overlay", Image, f"{n}/overlay"),
                                ("events", TrackEvent, f"{n}/events"), ("diag", DiagnosticArray, "/diagnostics")):
            c.create_subscription(typ, topic, self.got[key].append, RELIABLE)
        self.segment_client = c.create_client(Segment, f"{n}/segment")
        self.stop_client = c.create_client(StopTracking, f"{n}/stop_tracking")
        self.action_client = ActionClient(c, SegmentAndTrack, f"{n}/segment_and_track")

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        assert self.node.trigger_configure().name == "SUCCESS"
        assert self.node.trigger_activate().name == "SUCCESS"
        self.wait_for(lambda: self.image_pub.get_subscription_count() > 0, "node subscribed to /image")

    def close(self) -> None:
        self.executor.shutdown()
        self._thread.join(5)
        self.action_client.destroy()
        self.client.destroy_node()
        self.node.destroy_node()
        self.ctx.try_shutdown()

    # -- helpers ----------------------------------------------------------------------------------
    @staticmethod
    def wait_for(predicate, what: str, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for: {what}")

    def publish_frames(self, start: int, stop: int, period: float = 0.0, **kw) -> None:
        for i in range(start, stop):
            self.image_pub.publish(image_msg(i, **kw))
            if period:
                time.sleep(period)

    def buffered(self) -> int:
        return len(self.node.session.buffer) if self.node.session else 0

    def call(self, client, request, timeout: float = 60.0):
        self.wait_for(client.service_is_ready, f"service {client.srv_name}")
        future = client.call_async(request)
        self.wait_for(future.done, f"reply of {client.srv_name}", timeout)
        return future.result()

    def segment(self, query="the cup left of the bowl", **kw):
        return self.call(self.segment_client, Segment.Request(query=query, **kw))

    def stop(self, track_id: int = 0):
        return self.call(self.stop_client, StopTracking.Request(track_id=track_id))
