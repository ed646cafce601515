"""Several cameras, one node: a head and a wrist camera served by one SegmentNode (parameter ``cameras``).

The node runs with the production executor and QoS; each camera's inputs are
remapped as a launch file would (``head/image:=...``) and the observer hears each
camera's outputs under ``~/<camera>/``. Checked: a ``*`` query is answered for
both cameras with unique track ids and each camera's outputs hold only its own
track; a camera-specific query touches only its camera; stopping a track on one
camera leaves the other's; a stalled camera does not cost the other any frame;
an unknown camera is refused with the names; the default node keeps today's topics.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import rclpy
from frames import SIZE, frame_rgb, stamp_ns
from node_harness import OBSERVER, NodeHarness
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from test_tracker_helpers import one_torch_thread  # noqa: F401  (autouse: one torch thread on a shared machine)

from sa2va_i_ros.msg import TrackedObjectArray, TrackEvent
from sa2va_i_ros.ros.conversions import ns_to_stamp
from sa2va_i_ros.ros.segment_node import SegmentNode, make_executor
from sa2va_i_ros.srv import Segment, StopTracking

pytestmark = pytest.mark.ros
CAMERAS = ("head", "wrist")
NAME = "cams"


def camera_image(camera: str, i: int) -> Image:
    rgb = frame_rgb(i) if camera == "head" else np.ascontiguousarray(frame_rgb(500 + i)[:, ::-1])
    msg = Image(height=SIZE[0], width=SIZE[1], encoding="rgb8", step=SIZE[1] * 3, data=rgb.tobytes())
    msg.header.stamp = ns_to_stamp(stamp_ns(i))
    msg.header.frame_id = f"{camera}_color_optical_frame"
    return msg


class TwoCameras:
    """The node with cameras head and wrist; the observer publishes each camera's images and hears its outputs."""

    def __init__(self, model_dir):
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        remaps = [a for c in CAMERAS for a in ("-r", f"{c}/image:=/{NAME}/{c}/image_raw")]
        self.node = SegmentNode(NAME, context=self.ctx, cli_args=["--ros-args", *remaps],
                                parameter_overrides=[Parameter("model", value=str(model_dir)),
                                                     Parameter("cameras", value=",".join(CAMERAS))])
        c = self.client = rclpy.create_node("cameras_client", context=self.ctx)
        self.image_pubs = {cam: c.create_publisher(Image, f"/{NAME}/{cam}/image_raw", OBSERVER) for cam in CAMERAS}
        self.objects: dict[str, list] = {cam: [] for cam in CAMERAS}
        self.events: dict[str, list] = {cam: [] for cam in CAMERAS}
        for cam in CAMERAS:
            c.create_subscription(TrackedObjectArray, f"/{NAME}/{cam}/objects", self.objects[cam].append, OBSERVER)
            c.create_subscription(TrackEvent, f"/{NAME}/{cam}/events", self.events[cam].append, OBSERVER)
        self.segment_client = c.create_client(Segment, f"/{NAME}/segment", qos_profile=OBSERVER)
        self.stop_client = c.create_client(StopTracking, f"/{NAME}/stop_tracking", qos_profile=OBSERVER)
        self.executor, self.client_executor = make_executor(self.ctx), SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self.client_executor.add_node(c)
        self._threads = [threading.Thread(target=e.spin, daemon=True) for e in (self.executor, self.client_executor)]
        for t in self._threads:
            t.start()
        self.wait_for, self.call = NodeHarness.wait_for, NodeHarness.call.__get__(self)

    def start(self) -> None:
        assert self.node.trigger_configure().name == "SUCCESS"
        assert self.node.trigger_activate().name == "SUCCESS"
        for cam in CAMERAS:
            self.wait_for(lambda cam=cam: self.image_pubs[cam].get_subscription_count() > 0, f"{cam} subscribed")
            for key in ("objects",):
                pub = self.node.cameras[cam].frame_publisher.pubs[key]
                self.wait_for(lambda pub=pub: pub.get_subscription_count() > 0, f"observer on {cam} {key}")

    def send(self, camera: str, i: int) -> None:
        io = self.node.cameras[camera]
        before = io.images_received
        self.image_pubs[camera].publish(camera_image(camera, i))
        self.wait_for(lambda: io.images_received > before, f"the node to take {camera} image {i}")

    def idle(self) -> bool:
        return self.node.workers.idle and not any(io.frame_publisher.queue.pending
                                                  for io in self.node.cameras.values())

    def segment(self, camera: str, query: str = "the cup left of the bowl"):
        return self.call(self.segment_client, Segment.Request(query=query, camera=camera))

    close = NodeHarness.close


@pytest.fixture
def cams(tiny_checkpoint):
    h = TwoCameras(tiny_checkpoint)
    try:
        h.start()
        yield h
    finally:
        h.close()


def buffer_both(cams, stop: int = 6) -> None:
    for i in range(stop):
        for cam in CAMERAS:
            cams.send(cam, i)
    cams.wait_for(lambda: all(len(cams.node.workers[c].session.buffer) == stop for c in CAMERAS), "buffered")


def track_both(cams, start: int, stop: int, cameras=CAMERAS) -> None:
    for i in range(start, stop):
        for cam in cameras:
            cams.send(cam, i)
        cams.wait_for(cams.idle, f"frame {i} processed")


def test_camera_star_query_is_answered_for_both_cameras_and_each_tracks_its_own(cams):
    buffer_both(cams)
    reply = cams.segment("*")
    assert reply.success, reply.message
    assert [o.camera for o in reply.objects] == list(CAMERAS)
    assert len(set(reply.track_ids)) == 2 and [o.track_id for o in reply.objects] == list(reply.track_ids)
    assert reply.objects[0].header.frame_id == "head_color_optical_frame"
    assert reply.objects[1].header.frame_id == "wrist_color_optical_frame"
    ids = {o.camera: o.track_id for o in reply.objects}
    track_both(cams, 6, 10)
    for cam in CAMERAS:
        cams.wait_for(lambda cam=cam: len(cams.objects[cam]) >= 4, f"{cam} outputs")
        assert all([(o.camera, o.track_id) for o in m.objects] == [(cam, ids[cam])] for m in cams.objects[cam])
        assert {m.header.frame_id for m in cams.objects[cam]} == {f"{cam}_color_optical_frame"}


def test_camera_specific_query_touches_only_its_camera(cams):
    buffer_both(cams)
    reply = cams.segment("wrist")
    assert reply.success, reply.message
    assert [o.camera for o in reply.objects] == ["wrist"]
    track_both(cams, 6, 9)
    cams.wait_for(lambda: len(cams.objects["wrist"]) >= 3, "wrist outputs")
    assert cams.objects["head"] == [] and cams.node.workers["head"].tracks == {}
    assert cams.node.workers["head"].counts_now()["requests"] == 0


def test_camera_stop_on_one_camera_leaves_the_other_cameras_track(cams):
    buffer_both(cams)
    reply = cams.segment("*")
    ids = {o.camera: o.track_id for o in reply.objects}
    stopped = cams.call(cams.stop_client, StopTracking.Request(track_id=ids["wrist"]))
    assert stopped.success and list(stopped.stopped_ids) == [ids["wrist"]]
    cams.wait_for(lambda: any(e.event == TrackEvent.STOPPED for e in cams.events["wrist"]), "wrist STOPPED")
    before = {c: len(cams.objects[c]) for c in CAMERAS}
    track_both(cams, 6, 9)
    cams.wait_for(lambda: len(cams.objects["head"]) >= before["head"] + 3, "head outputs")
    assert len(cams.objects["wrist"]) == before["wrist"]
    assert not any(e.event == TrackEvent.STOPPED for e in cams.events["head"])
    every = cams.call(cams.stop_client, StopTracking.Request(track_id=0, camera="head"))
    assert list(every.stopped_ids) == [ids["head"]]


def test_camera_stalled_costs_the_other_camera_no_frame(cams):
    """Both tracked, then only the head camera sends: every head frame is tracked and published."""
    buffer_both(cams)
    assert cams.segment("*").success
    before = len(cams.objects["head"])
    for i in range(6, 16):  # the wrist camera stalls: nothing from it
        cams.send("head", i)
        cams.wait_for(cams.idle, f"head frame {i} processed")
    cams.wait_for(lambda: len(cams.objects["head"]) >= before + 10, "every head frame published")
    assert cams.node.workers["head"].counts_now()["frames_dropped_stale"] == 0


def test_camera_unknown_is_refused_with_the_cameras(cams):
    buffer_both(cams, 2)
    reply = cams.segment("left_arm")
    assert not reply.success
    assert "unknown camera 'left_arm' (cameras: head, wrist)" in reply.message
    stop = cams.call(cams.stop_client, StopTracking.Request(track_id=0, camera="left_arm"))
    assert not stop.success and "unknown camera 'left_arm'" in stop.message


def test_camera_default_single_camera_keeps_todays_topics(tiny_checkpoint):
    h = NodeHarness(tiny_checkpoint, name="single")
    try:
        h.start()
        topics = {t for t, _ in h.node.get_publisher_names_and_types_by_node("single", "/")}
        assert {"/single/objects", "/single/mask", "/single/object_points", "/single/overlay", "/single/events",
                "/single/markers"} <= topics
        subscribed = {t for t, _ in h.node.get_subscriber_names_and_types_by_node("single", "/")}
        assert "/single/image" in subscribed  # image remapped by the harness, as a launch file does
        h.publish_frames(0, 4)
        reply = h.segment()
        assert reply.success and [o.camera for o in reply.objects] == [""]
        h.track_frames(4, 6)
        h.wait_for(lambda: h.got["objects"], "outputs")
        assert all(o.camera == "" for m in h.got["objects"] for o in m.objects)
    finally:
        h.close()


def test_camera_names_are_checked():
    from sa2va_i_ros.ros.parameters import BY_NAME, camera_names, check_changes, check_value

    assert camera_names("") == [""] and camera_names("head,wrist") == ["head", "wrist"]
    with pytest.raises(ValueError, match="distinct"):
        camera_names("head,head")
    assert check_value(BY_NAME["cameras"], "head,wrist") is None
    assert "must match" in check_value(BY_NAME["cameras"], "head, wrist")
    assert "must match" in check_value(BY_NAME["cameras"], "*")
    assert check_changes({"cameras": "", "num_frames": 5, "max_num_frames": 32}, [("cameras", "a,a")]) \
        == "cameras must be distinct names; got 'a,a'"


def test_camera_two_cameras_replayed_from_one_bag(cams, tmp_path):
    """The synthetic head and wrist views in one bag (``write_cameras_bag``), played into the node's two
    cameras: a ``*`` query on the first half, both tracked on the second half, each in its own frame."""
    from sa2va_i_ros.cli.play import BagPlayer
    from sa2va_i_ros.testing.synthetic.bag_writer import write_cameras_bag
    from sa2va_i_ros.testing.synthetic.scene import SceneSpec, generate_frames
    from sa2va_i_ros.testing.synthetic.views import view

    specs = {name: SceneSpec(width=128, height=96, frames=16, fps=10.0, seed=5, view=name) for name in CAMERAS}
    frames = {name: list(generate_frames(spec)) for name, spec in specs.items()}
    remap = {view(name).color_topic: f"/{NAME}/{name}/image_raw" for name in CAMERAS}
    for half, part in (("first", slice(0, 8)), ("second", slice(8, 16))):
        write_cameras_bag(tmp_path / half, {n: (frames[n][part], specs[n].camera.camera_info()) for n in CAMERAS})
    player = BagPlayer(cams.client, tmp_path / "first", rate=2.0, topics=list(remap), remap=remap)
    player.play()
    cams.wait_for(lambda: all(len(cams.node.workers[c].session.buffer) >= 4 for c in CAMERAS), "frames buffered")
    reply = cams.segment("*", "the red box")
    assert reply.success, reply.message
    ids = {o.camera: o.track_id for o in reply.objects}
    assert sorted(ids) == sorted(CAMERAS) and len(set(ids.values())) == 2
    BagPlayer(cams.client, tmp_path / "second", rate=2.0, topics=list(remap), remap=remap).play()
    for cam in CAMERAS:
        cams.wait_for(lambda cam=cam: len(cams.objects[cam]) >= 3, f"{cam} tracked from the bag")
        stamps = {f.stamp_ns for f in frames[cam][8:]}
        for m in cams.objects[cam]:
            assert m.header.frame_id == view(cam).frame_id
            assert m.header.stamp.sec * 10**9 + m.header.stamp.nanosec in stamps
            assert [(o.camera, o.track_id) for o in m.objects] == [(cam, ids[cam])]
