"""Pure conversions between ROS messages and the core's numpy types (no node, no rclpy calls).

Incoming images are decoded by ``imaging.image_codec`` as views over ``msg.data``.
Outgoing payloads are copied once into an ``array.array('B')`` with
``frombytes``: rclpy stores uint8[] fields as array.array, assigning one is
taken as is, while assigning bytes or a numpy array goes through a per-element
check (ROS_PYTHON_CHECK_FIELDS=1) or an extra conversion.
"""

from __future__ import annotations

import array
import math

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField, RegionOfInterest
from std_msgs.msg import Header

from sa2va_i_ros.imaging import compressed_codec, image_codec
from sa2va_i_ros.imaging.geometry import Intrinsics, mask_area, mask_bbox
from sa2va_i_ros.msg import TrackedObject

_NS = 1_000_000_000
_XYZ = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
_XYZ_FIELDS = tuple(PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                    for i, n in enumerate("xyz"))


def uint8_payload(buffer: np.ndarray) -> array.array:
    """One memcpy of a C-contiguous array into the array.array rclpy keeps for uint8[]."""
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(buffer).view(np.uint8))
    return out


def stamp_to_ns(stamp: Time) -> int:
    return stamp.sec * _NS + stamp.nanosec


def ns_to_stamp(ns: int) -> Time:
    sec, nanosec = divmod(int(ns), _NS)
    return Time(sec=sec, nanosec=nanosec)


def copy_header(header: Header) -> Header:
    """A header equal to ``header`` that later changes to the source do not reach."""
    return Header(stamp=Time(sec=header.stamp.sec, nanosec=header.stamp.nanosec), frame_id=header.frame_id)


def image_to_rgb(msg: Image) -> np.ndarray:
    """Read-only (H, W, 3) RGB view over ``msg.data`` (see ``image_codec.decode_rgb``)."""
    return image_codec.decode_rgb(msg.height, msg.width, msg.encoding, msg.step, msg.data, msg.is_bigendian)


def image_to_depth(msg: Image) -> np.ndarray:
    """(H, W) float32 metres from 16UC1 or 32FC1 (see ``image_codec.decode_depth``)."""
    return image_codec.decode_depth(msg.height, msg.width, msg.encoding, msg.step, msg.data, msg.is_bigendian)


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """(H, W, 3) RGB of an image_transport ``compressed`` message (see ``compressed_codec``); a new array."""
    return compressed_codec.decode_compressed_rgb(msg.format, msg.data)


def compressed_to_depth(msg: CompressedImage) -> np.ndarray:
    """(H, W) float32 metres of an image_transport ``compressedDepth`` message."""
    return compressed_codec.decode_compressed_depth(msg.format, msg.data)


def any_to_depth(msg: Image | CompressedImage) -> np.ndarray:
    """Depth in metres from a raw depth Image or a compressedDepth CompressedImage."""
    return compressed_to_depth(msg) if isinstance(msg, CompressedImage) else image_to_depth(msg)


def _image_msg(enc: image_codec.EncodedImage, header: Header) -> Image:
    return Image(header=copy_header(header), height=enc.height, width=enc.width, encoding=enc.encoding,
                 is_bigendian=enc.is_bigendian, step=enc.step, data=uint8_payload(enc.data))


def mask_to_image_msg(mask: np.ndarray, header: Header) -> Image:
    """mono8 Image, 0 = background, 255 = object, with a copy of ``header``."""
    return _image_msg(image_codec.encode_mask(mask), header)


def instance_to_image_msg(ids: np.ndarray, header: Header) -> Image:
    """Little-endian Image, pixel = track id, 0 = background: mono16, or 32SC1 once an id exceeds 65535."""
    return _image_msg(image_codec.encode_instances(ids), header)


def rgb_to_image_msg(rgb: np.ndarray, header: Header) -> Image:
    return _image_msg(image_codec.encode_rgb(rgb), header)


def camera_info_to_intrinsics(msg: CameraInfo) -> Intrinsics:
    """Intrinsics from K; raises ``GeometryError`` for an uncalibrated (all-zero) K."""
    return Intrinsics.from_k(msg.k, msg.width, msg.height)


def points_to_pointcloud2(points: np.ndarray, header: Header) -> PointCloud2:
    """Unordered cloud (height 1) of float32 x, y, z fields, little-endian."""
    pts = np.ascontiguousarray(points, dtype="<f4")
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {pts.shape}")
    cloud = pts.view(_XYZ).reshape(-1)
    return PointCloud2(header=copy_header(header), height=1, width=cloud.size, fields=list(_XYZ_FIELDS),
                       is_bigendian=False, point_step=_XYZ.itemsize, row_step=_XYZ.itemsize * cloud.size,
                       data=uint8_payload(cloud), is_dense=bool(np.isfinite(pts).all()))


def tracked_object_msg(header: Header, track_id: int, query: str, score: float, visible: bool,
                       mask: np.ndarray, centroid: tuple[float, float, float] | None) -> TrackedObject:
    """One TrackedObject; its mask Image carries the same header, centroid is NaN when None."""
    x, y, w, h = mask_bbox(mask)
    cx, cy, cz = (math.nan, math.nan, math.nan) if centroid is None else (float(c) for c in centroid)
    return TrackedObject(header=copy_header(header), track_id=int(track_id), query=str(query),
                         score=float(score), visible=bool(visible),
                         bbox=RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h),
                         area=mask_area(mask), mask=mask_to_image_msg(mask, header),
                         centroid=Point(x=cx, y=cy, z=cz))
