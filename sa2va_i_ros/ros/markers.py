"""RViz markers of the tracked objects (``~/markers``), as pure functions of what a frame produced.

Per object, in the camera's optical frame and with the source frame's header:

* ``labels``: a text label "query #id" (and "(lost)" while the track is lost),
  at the object's 3D centroid when depth is on; without depth, on the ray
  through the mask's pixel centroid, on the plane 1 m ahead of the camera
  (``label_on_plane``: with the camera's intrinsics when known, else a pinhole
  with the focal length equal to the image width, about 53 degrees across), so
  that seen from the camera the label sits on the object; an empty mask's
  label is stacked on the optical axis;
* ``centroids``: a sphere at the centroid of the masked depth points;
* ``boxes``: the axis-aligned box (optical frame) around the object's points,
  the same points as ``~/object_points``.

Marker ids are track ids, namespaces say which kind, so each object keeps its
three markers for its whole life. ``MarkerBook`` remembers which markers it
sent: a frame without 3D for an object deletes its sphere and box only if they
were sent, and a track that ends (stopped, replaced, or gone from the frame's
objects) has exactly its sent markers deleted, so RViz never shows a stale
object and never receives a DELETE for a marker it never had.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from sa2va_i_ros.imaging.geometry import id_color
from sa2va_i_ros.ros.conversions import copy_header

NS_LABEL, NS_CENTROID, NS_BOX = "labels", "centroids", "boxes"
NAMESPACES = (NS_LABEL, NS_CENTROID, NS_BOX)
TEXT_HEIGHT_M = 0.04
SPHERE_DIAMETER_M = 0.03
MIN_BOX_SIDE_M = 0.005  # a flat or single-point object still shows a visible box
NO_DEPTH_LABEL_Z_M, NO_DEPTH_LABEL_STEP_M = 1.0, 0.06
_IDENTITY = Quaternion(x=0.0, y=0.0, z=0.0, w=1.0)
_FOREVER = Duration(sec=0, nanosec=0)


@dataclass(frozen=True)
class MarkedObject:
    """What the markers of one object are made of (points: the object's (N, 3) points, or None)."""

    track_id: int
    query: str
    visible: bool
    centroid: tuple[float, float, float] | None = None
    points: np.ndarray | None = None
    label_at: tuple[float, float, float] | None = None  # where the label goes without 3D (label_on_plane)


def label_on_plane(mask: np.ndarray, intrinsics=None, z: float = NO_DEPTH_LABEL_Z_M):
    """The point at depth ``z`` on the ray through the mask's pixel centroid (None for an empty mask).

    ``intrinsics`` (``geometry.Intrinsics``) when the camera's are known; else
    a pinhole with fx = fy = the image width and the principal point at the
    image centre.
    """
    rows, cols = np.nonzero(np.asarray(mask).reshape(np.asarray(mask).shape[:2]))
    if not len(rows):
        return None
    h, w = np.asarray(mask).shape[:2]
    if intrinsics is not None and (intrinsics.height, intrinsics.width) == (h, w):
        fx, fy, cx, cy = intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy
    else:
        fx = fy = float(w)
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    u, v = float(cols.mean()), float(rows.mean())
    return ((u - cx) / fx * z, (v - cy) / fy * z, float(z))


def _color(track_id: int, visible: bool, alpha: float) -> ColorRGBA:
    if not visible:
        return ColorRGBA(r=0.6, g=0.6, b=0.6, a=alpha)
    r, g, b = id_color(track_id)
    return ColorRGBA(r=r / 255.0, g=g / 255.0, b=b / 255.0, a=alpha)


def _marker(header, ns: str, track_id: int, kind: int, position, scale, color) -> Marker:
    x, y, z = (float(v) for v in position)
    sx, sy, sz = (float(v) for v in scale)
    return Marker(header=copy_header(header), ns=ns, id=int(track_id), type=kind, action=Marker.ADD,
                  pose=Pose(position=Point(x=x, y=y, z=z), orientation=_IDENTITY),
                  scale=Vector3(x=sx, y=sy, z=sz), color=color, lifetime=_FOREVER, frame_locked=False)


def label_text(query: str, track_id: int, visible: bool) -> str:
    return f"{query} #{track_id}" + ("" if visible else " (lost)")


def object_markers(header, obj: MarkedObject, rank: int = 0) -> list[Marker]:
    """The label, and with 3D the sphere and box, of one object (only ADD markers: ``MarkerBook`` deletes
    what a frame no longer shows)."""
    has_3d = obj.centroid is not None and all(np.isfinite(obj.centroid))
    if has_3d:
        where = obj.centroid
    elif obj.label_at is not None:
        where = obj.label_at
    else:
        where = (0.0, NO_DEPTH_LABEL_STEP_M * rank, NO_DEPTH_LABEL_Z_M)
    label = _marker(header, NS_LABEL, obj.track_id, Marker.TEXT_VIEW_FACING, where,
                    (0.0, 0.0, TEXT_HEIGHT_M), _color(obj.track_id, obj.visible, 1.0))
    label.text = label_text(obj.query, obj.track_id, obj.visible)
    if not has_3d:
        return [label]
    out = [label, _marker(header, NS_CENTROID, obj.track_id, Marker.SPHERE, obj.centroid, (SPHERE_DIAMETER_M,) * 3,
                          _color(obj.track_id, obj.visible, 0.9))]
    pts = None if obj.points is None else np.asarray(obj.points, np.float64).reshape(-1, 3)
    pts = None if pts is None else pts[np.isfinite(pts).all(axis=1)]
    if pts is not None and len(pts):
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        out.append(_marker(header, NS_BOX, obj.track_id, Marker.CUBE, (lo + hi) / 2.0,
                           np.maximum(hi - lo, MIN_BOX_SIDE_M), _color(obj.track_id, obj.visible, 0.3)))
    return out


def delete_markers(header, track_ids: Iterable[int], namespaces: Sequence[str] = NAMESPACES) -> list[Marker]:
    return [Marker(header=copy_header(header), ns=ns, id=int(i), action=Marker.DELETE)
            for i in track_ids for ns in namespaces]


class MarkerBook:
    """Which markers are out (namespaces per track); turns each frame into a MarkerArray that also removes
    what is no longer shown, and nothing that was never sent.

    Track ids are never reused, so a stopped id stays ended: a frame computed
    before the stop but published after it (one that waited for its depth
    image) does not bring its markers back.
    """

    ENDED_KEPT = 4096  # ended ids remembered (a frame is never that many stops late)

    def __init__(self):
        self.sent: dict[int, set[str]] = {}  # track id -> namespaces of its markers RViz has now
        self.ended: dict[int, None] = {}  # insertion-ordered set

    @property
    def shown(self) -> set[int]:
        return set(self.sent)

    def _deletes(self, header, track_ids) -> list[Marker]:
        out = []
        for i in sorted(track_ids):
            sent = self.sent.pop(i, set())
            out += delete_markers(header, [i], [ns for ns in NAMESPACES if ns in sent])
        return out

    def frame(self, header, objects: Sequence[MarkedObject]) -> MarkerArray:
        objects = [o for o in objects if o.track_id not in self.ended]
        ids = {o.track_id for o in objects}
        markers = self._deletes(header, set(self.sent) - ids)
        for rank, obj in enumerate(sorted(objects, key=lambda o: o.track_id)):
            added = object_markers(header, obj, rank)
            now = {m.ns for m in added}
            gone = [ns for ns in NAMESPACES if ns in self.sent.get(obj.track_id, ()) and ns not in now]
            markers += added + delete_markers(header, [obj.track_id], gone)
            self.sent[obj.track_id] = now
        return MarkerArray(markers=markers)

    def stop(self, header, track_ids: Iterable[int]) -> MarkerArray | None:
        """Deletes for tracks that ended between frames (stop_tracking, replaced, cleanup); None if none shown."""
        track_ids = set(track_ids)
        for i in track_ids:
            self.ended[i] = None
        while len(self.ended) > self.ENDED_KEPT:
            del self.ended[next(iter(self.ended))]
        markers = self._deletes(header, set(self.sent) & track_ids)
        return MarkerArray(markers=markers) if markers else None

    def clear(self, header) -> MarkerArray | None:
        """Deletes for every shown marker (deactivate, cleanup); the tracks are not ended by it: a later frame
        of one shows it again."""
        markers = self._deletes(header, set(self.sent))
        return MarkerArray(markers=markers) if markers else None
