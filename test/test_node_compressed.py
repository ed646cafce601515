"""The node on image_transport's compressed topics (image_transport: both), and ~/markers.

Production settings (sensor-data QoS, queue depth 2, the production executor)
except ``image_transport`` and ``use_depth``. Every bad case of the raw path has
its compressed twin here: a truncated JPEG, a wrong format string, a format
contradicting the data, a size change mid-stream, a compressedDepth header
that does not fit. Each is dropped with its reason counted, and nothing else is
lost: the next good frame is buffered, the track goes on. With both transports
the first good copy of a frame wins, a corrupt copy hides nothing, and a frame
held by the stamp gate (a size change waiting for confirmation) is not held
twice. Markers follow the track and are deleted when it stops, is replaced, or
the node is deactivated.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from frames import SIZE, frame_rgb, stamp_ns
from node_harness import OBSERVER, NodeHarness, camera_info, image_msg
from sensor_msgs.msg import CompressedImage
from test_tracker_helpers import one_torch_thread  # noqa: F401  (autouse: one torch thread on a shared machine)
from visualization_msgs.msg import Marker, MarkerArray

from sa2va_i_ros.imaging.compressed_codec import encode_depth_16uc1, encode_jpeg
from sa2va_i_ros.msg import TrackEvent
from sa2va_i_ros.ros.conversions import ns_to_stamp, stamp_to_ns
from sa2va_i_ros.ros.markers import NAMESPACES

pytestmark = pytest.mark.ros
QUERY = "the cup left of the bowl"
FRAME_ID = "camera_color_optical_frame"


def jpeg_msg(i: int, size=SIZE) -> CompressedImage:
    fmt, data = encode_jpeg(frame_rgb(i, size), 95)
    msg = CompressedImage(format=fmt, data=data)
    msg.header.stamp, msg.header.frame_id = ns_to_stamp(stamp_ns(i)), FRAME_ID
    return msg


def depth_msg(i: int, size=SIZE, mm: int = 800) -> CompressedImage:
    fmt, data = encode_depth_16uc1(np.full(size, mm, np.uint16))
    msg = CompressedImage(format=fmt, data=data)
    msg.header.stamp, msg.header.frame_id = ns_to_stamp(stamp_ns(i)), FRAME_ID
    return msg


@pytest.fixture(scope="module")
def harness(tiny_checkpoint):
    h = NodeHarness(tiny_checkpoint, use_depth=True, image_transport="both")
    c = h.client
    h.jpeg_pub = c.create_publisher(CompressedImage, "/sa2va_i/image/compressed", OBSERVER)
    h.cdepth_pub = c.create_publisher(CompressedImage, "/sa2va_i/depth/compressedDepth", OBSERVER)
    h.got["markers"] = []
    c.create_subscription(MarkerArray, "/sa2va_i/markers", h.got["markers"].append, OBSERVER)
    h.start()
    h.wait_for(lambda: h.jpeg_pub.get_subscription_count() > 0 and h.cdepth_pub.get_subscription_count() > 0,
               "node subscribed to the compressed topics")
    h.wait_for(lambda: h.node.frame_publisher.markers_pub.get_subscription_count() > 0,
               "observer subscribed to ~/markers")
    h.info_pub.publish(camera_info())
    yield h
    h.close()


@pytest.fixture(autouse=True)
def clean(harness):
    """Each test starts with no track, an empty buffer and no remembered stamps."""
    yield
    harness.reset()


def count(harness, key: str) -> int:
    return harness.node._counts.get(key, 0)


def send(harness, pub, msg) -> None:
    """Publish one colour message and wait until the node's image callback took it (production queue depth)."""
    before = harness.node.images_received
    pub.publish(msg)
    harness.wait_for(lambda: harness.node.images_received > before, "the node to take the image")


def jpeg_frames(harness, start, stop, depth=True, lockstep=False):
    """JPEG frames (with their compressedDepth); ``lockstep``: each once the worker is done with the last."""
    for i in range(start, stop):
        if depth:
            harness.cdepth_pub.publish(depth_msg(i))
        send(harness, harness.jpeg_pub, jpeg_msg(i))
        if lockstep:
            harness.wait_for(harness.idle, f"the worker to process frame {i}")


def objects_for(harness, stamps) -> dict:
    harness.wait_for(lambda: set(stamps) <= {stamp_to_ns(m.header.stamp) for m in harness.got["objects"]},
                     "objects for every frame")
    return {stamp_to_ns(m.header.stamp): m for m in harness.got["objects"]}


def markers(harness, action=None, ns=None) -> list[Marker]:
    return [m for a in harness.got["markers"] for m in a.markers
            if (action is None or m.action == action) and (ns is None or m.ns == ns)]


def test_compressed_frames_are_grounded_tracked_and_keep_their_headers(harness):
    jpeg_frames(harness, 0, 5)
    harness.wait_for(lambda: harness.buffered() == 5, "5 compressed frames buffered")
    r = harness.segment(QUERY)
    assert r.success, r.message
    assert [stamp_to_ns(s) for s in r.sampled_stamps] == [stamp_ns(i) for i in r.sampled_indices]
    jpeg_frames(harness, 5, 8, lockstep=True)
    got = objects_for(harness, [stamp_ns(i) for i in range(5, 8)])
    for i in range(5, 8):
        msg = got[stamp_ns(i)]
        assert stamp_to_ns(msg.header.stamp) == stamp_ns(i) and msg.header.frame_id == FRAME_ID
        (obj,) = msg.objects
        assert obj.track_id == r.track_id and obj.mask.header == msg.header
        assert math.isnan(obj.centroid.z) if obj.area == 0 else obj.centroid.z == pytest.approx(0.8, abs=1e-3)
    assert any(got[stamp_ns(i)].objects[0].area > 0 for i in range(5, 8))  # 3D came from the PNG depth


def truncated(i):
    msg = jpeg_msg(i)
    msg.data = msg.data[: len(msg.data) // 2]
    return msg


def wrong_format(i):
    msg = jpeg_msg(i)
    msg.format = "rgb8; h264"
    return msg


def png_said_jpeg(i):
    msg = jpeg_msg(i)
    msg.format = "rgb8; png compressed bgr8"
    return msg


@pytest.mark.parametrize("bad, counted", [(truncated, "image InvalidImage"),
                                          (wrong_format, "image UnsupportedEncoding"),
                                          (png_said_jpeg, "image InvalidImage")])
def test_bad_compressed_frames_are_dropped_counted_and_nothing_else_is_lost(harness, bad, counted):
    jpeg_frames(harness, 0, 3, depth=False)
    r = harness.segment(QUERY)
    assert r.success, r.message
    harness.wait_for(harness.idle, "the track to join")
    before = count(harness, counted)
    send(harness, harness.jpeg_pub, bad(3))
    assert count(harness, counted) == before + 1
    jpeg_frames(harness, 4, 5, depth=False, lockstep=True)
    assert harness.buffered() == 4  # frames 0-2 and 4: the bad one never entered, the next good one did
    got = objects_for(harness, [stamp_ns(4)])
    assert stamp_ns(3) not in got and got[stamp_ns(4)].objects[0].track_id == r.track_id
    assert harness.node.worker.tracks == {r.track_id: QUERY}


def test_compressed_size_change_mid_stream_with_both_transports(harness):
    """The camera switches resolution; both copies of every frame arrive. The stamp gate holds the new size
    until three frames confirm it: the second copy of a held frame must not restart that count."""
    jpeg_frames(harness, 0, 4, depth=False)
    r = harness.segment(QUERY)
    assert r.success, r.message
    harness.wait_for(harness.idle, "the track to join")
    new = (120, 160)
    for i in range(4, 7):
        send(harness, harness.jpeg_pub, jpeg_msg(i, size=new))
        send(harness, harness.image_pub, image_msg(i, size=new))  # the raw copy of the same frame
    harness.wait_for(lambda: any(stamp_to_ns(m.header.stamp) == stamp_ns(6) for m in harness.got["mask"]),
                     "a mask on the new size")
    mask = next(m for m in harness.got["mask"] if stamp_to_ns(m.header.stamp) == stamp_ns(6))
    assert (mask.height, mask.width) == new
    assert harness.node.worker.tracks == {r.track_id: QUERY}


def test_compressed_depth_header_mismatch_is_counted_and_rgb_outputs_go_on(harness):
    jpeg_frames(harness, 0, 3)
    r = harness.segment(QUERY)
    assert r.success, r.message
    harness.wait_for(harness.idle, "the track to join")
    before = count(harness, "depth InvalidImage")
    bad = depth_msg(3)
    bad.data = bad.data[12:]  # a plain PNG: the 12-byte config header is missing
    harness.cdepth_pub.publish(bad)
    send(harness, harness.jpeg_pub, jpeg_msg(3))
    got = objects_for(harness, [stamp_ns(3)])
    harness.wait_for(lambda: count(harness, "depth InvalidImage") > before, "the bad depth counted")
    (obj,) = got[stamp_ns(3)].objects
    assert obj.track_id == r.track_id and math.isnan(obj.centroid.z)
    jpeg_frames(harness, 4, 5, lockstep=True)  # the next good depth gives 3D again
    (obj,) = objects_for(harness, [stamp_ns(4)])[stamp_ns(4)].objects
    assert obj.track_id == r.track_id and (obj.area == 0 or obj.centroid.z == pytest.approx(0.8, abs=1e-3))


def test_both_transports_first_copy_wins_and_a_corrupt_copy_hides_nothing(harness):
    dup, skipped = count(harness, "image duplicate"), harness.node.cameras[''].gate.skipped
    for i in range(3):
        send(harness, harness.jpeg_pub, jpeg_msg(i))
        send(harness, harness.image_pub, image_msg(i))  # the raw copy of the same frame
    assert harness.node.cameras[''].gate.skipped - skipped == 3  # the second copy of each frame skipped
    assert harness.buffered() == 3
    assert count(harness, "image duplicate") == dup  # the second copies never reached the buffer
    bad = count(harness, "image InvalidImage")
    send(harness, harness.jpeg_pub, truncated(3))  # the compressed copy of frame 3 arrives first, corrupt
    assert count(harness, "image InvalidImage") == bad + 1
    send(harness, harness.image_pub, image_msg(3))
    assert harness.buffered() == 4  # the raw copy of the corrupt frame was buffered
    assert harness.node.session.buffer.latest().stamp_ns == stamp_ns(3)


def test_an_image_counts_as_received_once_its_callback_is_done(harness):
    """What ``send`` waits on: had the count come first, a test could read the node's counts (or the buffer)
    before the callback decided about the image."""
    worker, entered, release = harness.node.worker, threading.Event(), threading.Event()

    def held(*args):
        entered.set()
        release.wait(60)
        return type(worker).offer_frame(worker, *args)

    before = harness.node.images_received
    worker.offer_frame = held
    try:
        harness.jpeg_pub.publish(jpeg_msg(0))
        harness.wait_for(entered.is_set, "the image callback to hand the frame to the worker")
        assert harness.node.images_received == before
    finally:
        release.set()
        del worker.offer_frame
    harness.wait_for(lambda: harness.node.images_received == before + 1, "the callback to finish")
    assert harness.buffered() == 1


def label_on(harness, i) -> bool:
    return any(stamp_to_ns(m.header.stamp) == stamp_ns(i) for m in markers(harness, Marker.ADD, "labels"))


def deleted(harness, track_id) -> set:
    return {m.ns for m in markers(harness, Marker.DELETE) if m.id == track_id}


def test_markers_follow_the_track_and_are_deleted_when_it_stops(harness):
    jpeg_frames(harness, 0, 4)
    r = harness.segment(QUERY)
    assert r.success, r.message
    jpeg_frames(harness, 4, 6, lockstep=True)
    objects_for(harness, [stamp_ns(4), stamp_ns(5)])
    harness.wait_for(lambda: label_on(harness, 5), "a label on the last frame")
    labels = markers(harness, Marker.ADD, "labels")
    assert {m.id for m in labels} == {r.track_id}
    assert all(m.text in (f"{QUERY} #{r.track_id}", f"{QUERY} #{r.track_id} (lost)") for m in labels)
    assert all(m.header.frame_id == FRAME_ID for m in labels)
    harness.got["markers"].clear()
    assert harness.stop(r.track_id).success
    harness.wait_for(lambda: deleted(harness, r.track_id) == set(NAMESPACES), "the three markers deleted")
    jpeg_frames(harness, 6, 7, lockstep=True)
    assert not label_on(harness, 6)


def test_markers_of_a_replaced_track_are_deleted(harness):
    jpeg_frames(harness, 0, 4)
    old = harness.segment(QUERY)
    jpeg_frames(harness, 4, 5, lockstep=True)
    harness.wait_for(lambda: label_on(harness, 4), "the first track's label")
    new = harness.segment(QUERY)  # the same query again: the new track replaces the old one
    assert new.success and new.track_id != old.track_id and str(old.track_id) in new.message  # "replaced track N"
    harness.wait_for(lambda: deleted(harness, old.track_id) == set(NAMESPACES), "the old track's markers deleted")
    stopped = [e.track_id for e in harness.got["events"] if e.event == TrackEvent.STOPPED]
    assert stopped == [old.track_id]
    jpeg_frames(harness, 5, 6, lockstep=True)
    harness.wait_for(lambda: label_on(harness, 5), "the new track's label")
    later = [m for m in markers(harness, Marker.ADD, "labels") if stamp_to_ns(m.header.stamp) == stamp_ns(5)]
    assert [m.id for m in later] == [new.track_id]


def test_deactivate_deletes_the_markers_and_activate_shows_them_again(harness):
    """Last in this module: it cycles the node's lifecycle."""
    jpeg_frames(harness, 0, 4)
    r = harness.segment(QUERY)
    jpeg_frames(harness, 4, 5, lockstep=True)
    harness.wait_for(lambda: label_on(harness, 4), "a label")
    assert harness.node.trigger_deactivate().name == "SUCCESS"
    harness.wait_for(lambda: deleted(harness, r.track_id) == set(NAMESPACES), "markers deleted on deactivate")
    assert harness.node.trigger_activate().name == "SUCCESS"
    harness.wait_for(lambda: harness.jpeg_pub.get_subscription_count() > 0, "subscribed again")
    jpeg_frames(harness, 5, 6, lockstep=True)
    harness.wait_for(lambda: label_on(harness, 5), "the track's label after activate")
    assert harness.node.worker.tracks == {r.track_id: QUERY}
