"""ROS message conversions: zero-copy decoding, payload bytes, PointCloud2 and TrackedObject fields."""

from __future__ import annotations

import math

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, Image, PointField
from std_msgs.msg import Header

from sa2va_i_ros.imaging.geometry import GeometryError
from sa2va_i_ros.imaging.image_codec import InvalidImage
from sa2va_i_ros.msg import TrackedObject
from sa2va_i_ros.ros import conversions as conv

RNG = np.random.default_rng(5)


def header(sec=12, nanosec=345, frame_id="camera_color_optical_frame") -> Header:
    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


def padded_msg(pixels: np.ndarray, encoding: str, pad: int, bigendian: int = 0) -> Image:
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1).view(np.uint8)
    data = np.concatenate([rows, np.full((h, pad), 77, np.uint8)], axis=1)
    return Image(header=header(), height=h, width=w, encoding=encoding, is_bigendian=bigendian,
                 step=data.shape[1], data=data.tobytes())


def test_stamps_round_trip_through_nanoseconds():
    assert conv.stamp_to_ns(Time(sec=1, nanosec=5)) == 1_000_000_005
    for ns in (0, 1, 999_999_999, 1_700_000_000_123_456_789, -1):
        t = conv.ns_to_stamp(ns)
        assert 0 <= t.nanosec < 1_000_000_000 and conv.stamp_to_ns(t) == ns
    assert conv.ns_to_stamp(-1) == Time(sec=-1, nanosec=999_999_999)


def test_image_to_rgb_is_a_view_over_msg_data():
    rgb = RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    msg = padded_msg(np.ascontiguousarray(rgb[:, :, ::-1]), "bgr8", pad=3)
    assert msg.data.typecode == "B"  # rclpy keeps uint8[] as array.array
    out = conv.image_to_rgb(msg)
    np.testing.assert_array_equal(out, rgb)
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))


def test_image_to_depth_big_endian_16uc1():
    mm = np.array([[0, 1000], [2500, 65535]], ">u2")
    out = conv.image_to_depth(padded_msg(mm, "16UC1", pad=2, bigendian=1))
    np.testing.assert_allclose(out, [[0.0, 1.0], [2.5, 65.535]], rtol=1e-6)


def test_image_to_depth_32fc1_zero_copy_and_errors():
    m = RNG.random((3, 4)).astype("<f4")
    msg = padded_msg(m, "32FC1", pad=4)
    out = conv.image_to_depth(msg)
    np.testing.assert_array_equal(out, m)
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))
    msg.height = 4
    with pytest.raises(InvalidImage):
        conv.image_to_depth(msg)


def test_mask_to_image_msg():
    h = header()
    mask = np.zeros((3, 4), bool)
    mask[1, 1:3] = True
    msg = conv.mask_to_image_msg(mask, h)
    assert (msg.height, msg.width, msg.encoding, msg.step, msg.is_bigendian) == (3, 4, "mono8", 4, 0)
    assert msg.header == h and msg.header is not h
    assert bytes(msg.data) == bytes([0, 0, 0, 0, 0, 255, 255, 0, 0, 0, 0, 0])
    h.stamp.sec, h.frame_id = 99, "other"  # the source header is reused by its owner
    assert msg.header.stamp.sec == 12 and msg.header.frame_id == "camera_color_optical_frame"


def test_payload_is_accepted_by_field_checking_messages():
    """With ROS_PYTHON_CHECK_FIELDS=1 rclpy checks bytes one by one; an array.array('B') is taken as is."""
    pixels = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    msg = Image(check_fields=True)
    msg.data = conv.uint8_payload(pixels[:, ::-1])
    assert msg.data.typecode == "B" and bytes(msg.data) == pixels[:, ::-1].tobytes()


def test_instance_to_image_msg_is_mono16_little_endian():
    ids = np.array([[0, 1, 2], [300, 0, 65535]], np.uint16)
    msg = conv.instance_to_image_msg(ids, header())
    assert (msg.encoding, msg.step, msg.is_bigendian) == ("mono16", 6, 0)
    np.testing.assert_array_equal(np.frombuffer(msg.data, "<u2").reshape(2, 3), ids)


def test_rgb_to_image_msg_round_trips():
    rgb = RNG.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    msg = conv.rgb_to_image_msg(rgb, header())
    assert (msg.encoding, msg.step) == ("rgb8", 27)
    np.testing.assert_array_equal(conv.image_to_rgb(msg), rgb)


def test_camera_info_to_intrinsics():
    info = CameraInfo(width=640, height=480, k=[600.0, 0.0, 320.5, 0.0, 610.0, 240.5, 0.0, 0.0, 1.0])
    i = conv.camera_info_to_intrinsics(info)
    assert (i.fx, i.fy, i.cx, i.cy, i.width, i.height) == (600.0, 610.0, 320.5, 240.5, 640, 480)
    with pytest.raises(GeometryError, match="uncalibrated"):
        conv.camera_info_to_intrinsics(CameraInfo(width=640, height=480))


def decode_cloud(msg) -> np.ndarray:
    dtype = np.dtype({"names": [f.name for f in msg.fields], "formats": ["<f4"] * len(msg.fields),
                      "offsets": [f.offset for f in msg.fields], "itemsize": msg.point_step})
    cloud = np.frombuffer(bytes(msg.data), dtype)
    return np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=1)


def test_points_to_pointcloud2_bytes_decode_back():
    pts = RNG.normal(size=(50, 3)).astype(np.float32)
    h = header()
    msg = conv.points_to_pointcloud2(pts, h)
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, PointField.FLOAT32, 1), ("y", 4, PointField.FLOAT32, 1), ("z", 8, PointField.FLOAT32, 1)]
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 50, 12, 600)
    assert not msg.is_bigendian and msg.is_dense and msg.header == h and len(msg.data) == 600
    np.testing.assert_array_equal(decode_cloud(msg), pts)


def test_pointcloud2_empty_and_non_finite():
    empty = conv.points_to_pointcloud2(np.zeros((0, 3), np.float32), header())
    assert (empty.width, empty.row_step, len(empty.data)) == (0, 0, 0)
    pts = np.array([[1.0, 2.0, np.nan]], np.float64)
    msg = conv.points_to_pointcloud2(pts, header())
    assert not msg.is_dense and np.isnan(decode_cloud(msg)[0, 2])
    with pytest.raises(ValueError):
        conv.points_to_pointcloud2(np.zeros((4, 2)), header())


def test_tracked_object_msg_fields():
    h = header(sec=3, nanosec=7)
    mask = np.zeros((6, 8), bool)
    mask[2:5, 1:4] = True
    obj = conv.tracked_object_msg(h, 5, "the red mug", 0.875, True, mask, (0.1, -0.2, 0.9))
    assert isinstance(obj, TrackedObject)
    assert (obj.track_id, obj.query, obj.visible) == (5, "the red mug", True)
    assert obj.score == pytest.approx(0.875) and obj.header == h and obj.mask.header == h
    b = obj.bbox
    assert (b.x_offset, b.y_offset, b.width, b.height, b.do_rectify) == (1, 2, 3, 3, False)
    assert obj.area == 9
    assert (obj.centroid.x, obj.centroid.y, obj.centroid.z) == pytest.approx((0.1, -0.2, 0.9))
    assert obj.mask.encoding == "mono8" and (obj.mask.height, obj.mask.width) == (6, 8)
    np.testing.assert_array_equal(np.frombuffer(obj.mask.data, np.uint8).reshape(6, 8), mask * 255)


def test_tracked_object_without_centroid_or_pixels():
    obj = conv.tracked_object_msg(header(), 1, "cup", 0.1, False, np.zeros((4, 4), bool), None)
    assert all(math.isnan(v) for v in (obj.centroid.x, obj.centroid.y, obj.centroid.z))
    assert obj.area == 0 and (obj.bbox.x_offset, obj.bbox.width, obj.bbox.height) == (0, 0, 0)
    assert not obj.visible
