"""Messages for one processed frame: objects, mask, object points, overlay, and what RViz markers need.

Pure functions of the session's ``FrameOutput`` and the frame's depth and
intrinsics: every message carries the SOURCE frame's header. ``~/mask`` is mono8
0/255 while one object is tracked, and an instance image (pixel = track id,
0 = background) with several: mono16, or 32SC1 on frames where an id exceeds
65535. ``~/object_points`` holds the masked depth pixels of every object,
back-projected, with a ``track_id`` field per point.
"""

from __future__ import annotations

import array
from dataclasses import dataclass, field

import numpy as np
from sensor_msgs.msg import Image, PointCloud2, PointField

from sa2va_i_ros.imaging import geometry
from sa2va_i_ros.msg import TrackedObjectArray
from sa2va_i_ros.ros.conversions import (
    copy_header,
    instance_to_image_msg,
    mask_to_image_msg,
    rgb_to_image_msg,
    tracked_object_msg,
)
from sa2va_i_ros.ros.markers import MarkedObject, label_on_plane
from sa2va_i_ros.runtime.session import FrameOutput

# unaligned depth (another frame or size than the colour image) cannot be indexed by a mask's pixels
ALIGN_HINT = ("depth must be aligned to the colour image (realsense2_camera: align_depth.enable:=true and the "
              "depth topic .../aligned_depth_to_color/image_raw)")
_POINT = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("track_id", "<u4")])
_POINT_FIELDS = [PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=1),
                 PointField(name="y", offset=4, datatype=PointField.FLOAT32, count=1),
                 PointField(name="z", offset=8, datatype=PointField.FLOAT32, count=1),
                 PointField(name="track_id", offset=12, datatype=PointField.UINT32, count=1)]


@dataclass
class FrameMessages:
    objects: TrackedObjectArray
    mask: Image
    points: PointCloud2 | None = None
    overlay: Image | None = None
    problems: list[str] = field(default_factory=list)  # why depth output is missing, for the log
    marked: list[MarkedObject] = field(default_factory=list)  # per object: what ~/markers shows (MarkerBook)


def points_cloud(points_by_id: dict[int, np.ndarray], header) -> PointCloud2:
    """One unordered cloud with x, y, z (float32, metres) and track_id (uint32) per point."""
    n = sum(len(p) for p in points_by_id.values())
    cloud = np.empty(n, _POINT)
    k = 0
    for tid, pts in points_by_id.items():
        cloud["x"][k:k + len(pts)], cloud["y"][k:k + len(pts)], cloud["z"][k:k + len(pts)] = pts.T
        cloud["track_id"][k:k + len(pts)] = tid
        k += len(pts)
    data = array.array("B")
    data.frombytes(cloud.tobytes())
    return PointCloud2(header=copy_header(header), height=1, width=n, fields=list(_POINT_FIELDS),
                       is_bigendian=False, point_step=_POINT.itemsize, row_step=_POINT.itemsize * n, data=data,
                       is_dense=True)


def frame_messages(out: FrameOutput, rgb: np.ndarray | None, depth_m: np.ndarray | None,
                   intrinsics: geometry.Intrinsics | None, max_points: int, cloud: bool = True,
                   object_masks: bool = True, depth_frame_id: str | None = None) -> FrameMessages:
    """``cloud`` false: no ~/object_points message (nobody listens; the markers still get the points).
    ``object_masks`` false: ~/objects without the full masks (``objects_with_masks``). ``depth_frame_id``:
    the depth image's frame; depth in another frame than the image is not aligned to it: no 3D output."""
    header = out.header
    problems: list[str] = []
    use_depth = depth_m is not None and intrinsics is not None
    if use_depth and out.objects:
        try:
            if depth_frame_id and header.frame_id and depth_frame_id != header.frame_id:
                raise geometry.GeometryError(f"depth is in frame {depth_frame_id!r}, the image in "
                                             f"{header.frame_id!r}")
            intrinsics.check(depth_m.shape, "depth")
            if depth_m.shape != out.objects[0].mask.shape:
                raise geometry.GeometryError(f"depth is {depth_m.shape[1]}x{depth_m.shape[0]}, the image "
                                             f"{out.objects[0].mask.shape[1]}x{out.objects[0].mask.shape[0]}")
        except geometry.GeometryError as exc:
            problems.append(f"no 3D output for this frame: {exc}; {ALIGN_HINT}")
            use_depth = False
    objects, points, marked = [], {}, []
    for o in out.objects:
        centroid = None
        if use_depth:
            c = geometry.centroid(o.mask, depth_m, intrinsics)
            centroid = c if not np.isnan(c[2]) else None
            area = max(1, int(o.mask.sum()))
            stride = max(1, int(np.ceil(np.sqrt(area / max_points))))
            points[o.track_id] = geometry.masked_points(o.mask, depth_m, intrinsics, stride=stride)
        objects.append(tracked_object_msg(header, o.track_id, o.query, o.score, o.visible, o.mask, centroid))
        if not object_masks:  # as a light reply: an empty image with the frame's header
            objects[-1].mask = Image(header=copy_header(header))
        label_at = None if centroid is not None else label_on_plane(o.mask, intrinsics)
        marked.append(MarkedObject(o.track_id, o.query, o.visible, centroid, points.get(o.track_id), label_at))
    msgs = FrameMessages(TrackedObjectArray(header=copy_header(header), objects=objects), _mask_msg(out),
                         problems=problems, marked=marked)
    if use_depth and cloud:
        msgs.points = points_cloud(points, header)
    if rgb is not None:
        masks = {o.track_id: o.mask for o in out.objects if o.mask.shape == rgb.shape[:2]}
        msgs.overlay = rgb_to_image_msg(geometry.overlay(rgb, masks), header)
    return msgs


def _mask_msg(out: FrameOutput) -> Image:
    if len(out.objects) == 1:
        return mask_to_image_msg(out.objects[0].mask, out.header)
    shape = out.objects[0].mask.shape
    ids = geometry.instance_image({o.track_id: o.mask for o in out.objects}, shape,
                                  scores={o.track_id: o.score for o in out.objects})
    return instance_to_image_msg(ids, out.header)
