"""RViz markers of tracked objects: labels, centroid spheres, boxes around the points, deletes when tracks end."""

from __future__ import annotations

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from sa2va_i_ros.imaging.geometry import Intrinsics, id_color
from sa2va_i_ros.ros.markers import NAMESPACES, MarkedObject, MarkerBook, label_on_plane, object_markers
from sa2va_i_ros.ros.outputs import frame_messages
from sa2va_i_ros.runtime.session import FrameOutput, ObjectOutput

HEADER = Header(stamp=Time(sec=1_700_000_003, nanosec=250_000_000), frame_id="camera_color_optical_frame")


def by_ns(markers):
    return {(m.ns, m.id): m for m in markers}


def test_object_with_depth_has_label_sphere_and_box_around_its_points():
    points = np.array([[0.0, 0.0, 1.0], [0.1, 0.2, 1.3], [0.05, 0.1, 1.1]], np.float32)
    obj = MarkedObject(3, "the cup left of the bowl", True, (0.05, 0.1, 1.1), points)
    markers = by_ns(object_markers(HEADER, obj))
    assert set(markers) == {("labels", 3), ("centroids", 3), ("boxes", 3)}
    for m in markers.values():
        assert m.header == HEADER and m.header is not HEADER and m.action == Marker.ADD
        assert m.pose.orientation.w == 1.0
    label, sphere, box = markers["labels", 3], markers["centroids", 3], markers["boxes", 3]
    assert label.type == Marker.TEXT_VIEW_FACING and label.text == "the cup left of the bowl #3"
    assert (label.pose.position.x, label.pose.position.y, label.pose.position.z) == pytest.approx((0.05, 0.1, 1.1))
    assert sphere.type == Marker.SPHERE
    assert (sphere.pose.position.x, sphere.pose.position.y, sphere.pose.position.z) == pytest.approx((0.05, 0.1, 1.1))
    assert box.type == Marker.CUBE  # centre and size of the points' bounds, worked out by hand
    assert (box.pose.position.x, box.pose.position.y, box.pose.position.z) == pytest.approx((0.05, 0.1, 1.15))
    assert (box.scale.x, box.scale.y, box.scale.z) == pytest.approx((0.1, 0.2, 0.3), abs=1e-6)
    r, g, b = id_color(3)
    assert (sphere.color.r, sphere.color.g, sphere.color.b) == pytest.approx((r / 255, g / 255, b / 255))
    assert 0 < box.color.a < sphere.color.a <= 1.0  # the box is see-through


def test_without_depth_the_label_sits_on_the_ray_through_the_mask_centroid():
    """No depth: the label is where the object is seen (issue 22: it stood on the optical axis 1 m out)."""
    h, w = 48, 64
    mask = np.zeros((h, w), bool)
    mask[4:10, 50:60] = True  # top right: centroid at u = 54.5, v = 6.5
    intr = Intrinsics(40.0, 50.0, 30.0, 20.0, w, h)
    x, y, z = label_on_plane(mask, intr, z=2.0)
    assert (x, y, z) == pytest.approx(((54.5 - 30.0) / 40.0 * 2.0, (6.5 - 20.0) / 50.0 * 2.0, 2.0))
    x, y, z = label_on_plane(mask)  # no intrinsics: right of and above the axis all the same
    assert x > 0 and y < 0 and z == 1.0
    assert label_on_plane(np.zeros((h, w), bool)) is None
    out = FrameOutput(HEADER, [ObjectOutput(7, "the cup", HEADER, mask, 0.9, True)], [])
    [marked] = frame_messages(out, None, None, intr, max_points=10).marked
    markers = by_ns(object_markers(HEADER, marked))
    assert set(markers) == {("labels", 7)}  # nothing else, and no DELETE for markers never sent
    p = markers["labels", 7].pose.position
    assert (p.x, p.y, p.z) == pytest.approx(label_on_plane(mask, intr))
    # an empty mask: stacked on the optical axis, never on top of each other
    a = by_ns(object_markers(HEADER, MarkedObject(1, "the bowl", True), rank=0))
    b = by_ns(object_markers(HEADER, MarkedObject(4, "the box", True), rank=1))
    assert a["labels", 1].pose.position.y < b["labels", 4].pose.position.y


def test_a_frame_without_3d_deletes_only_the_markers_that_were_sent():
    """Issue 22: every frame without depth sent DELETE for spheres and boxes that never existed."""
    book = MarkerBook()
    for _ in range(3):
        markers = book.frame(HEADER, [MarkedObject(1, "the bowl", True)]).markers
        assert [(m.ns, m.action) for m in markers] == [("labels", Marker.ADD)]
    points = np.array([[0.0, 0.0, 1.0], [0.1, 0.1, 1.1]], np.float32)
    book.frame(HEADER, [MarkedObject(1, "the bowl", True, (0.05, 0.05, 1.05), points)])
    lost_3d = by_ns(book.frame(HEADER, [MarkedObject(1, "the bowl", True)]).markers)  # sphere and box now gone
    assert {k: m.action for k, m in lost_3d.items()} == {
        ("labels", 1): Marker.ADD, ("centroids", 1): Marker.DELETE, ("boxes", 1): Marker.DELETE}
    assert [(m.ns, m.action) for m in book.frame(HEADER, [MarkedObject(1, "the bowl", True)]).markers] == [
        ("labels", Marker.ADD)]
    stopped = book.stop(HEADER, [1])  # only its label is out
    assert [(m.ns, m.id, m.action) for m in stopped.markers] == [("labels", 1, Marker.DELETE)]
    nan = by_ns(object_markers(HEADER, MarkedObject(2, "q", True, (np.nan, np.nan, np.nan))))
    assert set(nan) == {("labels", 2)}


def test_lost_track_is_grey_and_says_so():
    label = by_ns(object_markers(HEADER, MarkedObject(2, "the can", False)))["labels", 2]
    assert label.text == "the can #2 (lost)"
    assert label.color.r == label.color.g == label.color.b


def test_box_of_one_point_is_still_visible_and_nan_points_are_ignored():
    pts = np.array([[0.1, 0.1, 0.9], [np.nan, 0.0, 1.0]], np.float32)
    box = by_ns(object_markers(HEADER, MarkedObject(5, "q", True, (0.1, 0.1, 0.9), pts)))["boxes", 5]
    assert box.action == Marker.ADD and min(box.scale.x, box.scale.y, box.scale.z) > 0
    assert box.pose.position.z == pytest.approx(0.9)


def solid(track_id: int, query: str) -> MarkedObject:
    """An object with 3D: all three of its markers are sent."""
    return MarkedObject(track_id, query, True, (0.0, 0.0, 1.0), np.array([[0.0, 0.0, 1.0]], np.float32))


def test_marker_book_deletes_tracks_that_ended():
    book = MarkerBook()
    first = book.frame(HEADER, [solid(1, "a"), solid(2, "b")])
    assert all(m.action == Marker.ADD for m in first.markers if m.ns == "labels")
    second = book.frame(HEADER, [solid(2, "b")])
    deleted = {(m.ns, m.id) for m in second.markers if m.action == Marker.DELETE}
    assert {(ns, 1) for ns in NAMESPACES} <= deleted
    assert ("labels", 2) not in deleted
    stopped = book.stop(HEADER, [2, 7])
    assert {(m.ns, m.id, m.action) for m in stopped.markers} == {(ns, 2, Marker.DELETE) for ns in NAMESPACES}
    assert book.stop(HEADER, [2]) is None  # nothing of it is shown any more
    book.frame(HEADER, [MarkedObject(3, "c", True)])
    assert {m.id for m in book.clear(HEADER).markers} == {3} and book.clear(HEADER) is None


def test_a_frame_published_after_its_track_stopped_does_not_bring_its_markers_back():
    """A frame that waited for its depth image goes out after the STOPPED of one of its tracks."""
    book = MarkerBook()
    book.frame(HEADER, [MarkedObject(1, "a", True), MarkedObject(2, "b", True)])
    assert book.stop(HEADER, [1]) is not None
    late = book.frame(HEADER, [MarkedObject(1, "a", True), MarkedObject(2, "b", True)])
    assert {m.id for m in late.markers if m.action == Marker.ADD} == {2}
    assert book.shown == {2}


def test_clear_hides_every_marker_without_ending_the_tracks():
    """Deactivate: nothing is shown any more, but the tracks go on after activate."""
    book = MarkerBook()
    book.frame(HEADER, [solid(4, "a")])
    cleared = book.clear(HEADER)
    assert {(m.ns, m.id, m.action) for m in cleared.markers} == {(ns, 4, Marker.DELETE) for ns in NAMESPACES}
    again = book.frame(HEADER, [MarkedObject(4, "a", True)])
    assert [m.id for m in again.markers if m.ns == "labels" and m.action == Marker.ADD] == [4]


def test_frame_messages_hand_the_markers_the_published_centroid_and_points():
    h, w = 48, 64
    intr = Intrinsics(50.0, 50.0, 31.5, 23.5, w, h)
    depth = np.full((h, w), 2.0, np.float32)
    depth[10:20, 10:30] = 1.0
    mask = np.zeros((h, w), bool)
    mask[10:20, 10:30] = True
    out = FrameOutput(HEADER, [ObjectOutput(7, "the cup", HEADER, mask, 0.9, True)], [])
    msgs = frame_messages(out, None, depth, intr, max_points=100000)
    [marked] = msgs.marked
    obj = msgs.objects.objects[0]
    assert marked.track_id == 7 and marked.query == "the cup" and marked.visible
    assert marked.centroid == pytest.approx((obj.centroid.x, obj.centroid.y, obj.centroid.z))
    cloud = np.frombuffer(bytes(msgs.points.data), [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("id", "<u4")])
    np.testing.assert_array_equal(marked.points, np.stack([cloud["x"], cloud["y"], cloud["z"]], 1))
    # box corners by hand: columns 10..29, rows 10..19 at z = 1
    box = by_ns(object_markers(HEADER, marked))["boxes", 7]
    assert box.scale.x == pytest.approx((29 - 10) / 50.0) and box.scale.y == pytest.approx((19 - 10) / 50.0)
    assert box.pose.position.x == pytest.approx(((10 + 29) / 2 - 31.5) / 50.0)
    no_depth = frame_messages(out, None, None, None, max_points=10)
    assert no_depth.marked[0].centroid is None and no_depth.marked[0].points is None
