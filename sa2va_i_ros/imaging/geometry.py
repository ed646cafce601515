"""Mask geometry for grasp planners: boxes, areas, back-projection, instance and overlay images.

numpy only. Depth and intrinsics must have the size of the mask: rescaling
intrinsics or resampling depth silently would misplace every point, so a size
mismatch raises ``GeometryError`` and the node skips depth for that frame.
Depth is float32 metres (``image_codec.decode_depth``); 0, NaN and inf mean "no depth".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from sa2va_i_ros.errors import Sa2VAError

_NAN3 = (math.nan, math.nan, math.nan)


class GeometryError(Sa2VAError, ValueError):
    """Mask, depth and intrinsics do not fit together."""


def _mask2d(mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim != 2:
        raise GeometryError(f"a mask must be 2-D, got shape {m.shape}")
    return m if m.dtype == np.bool_ else m != 0


def mask_area(mask: np.ndarray) -> int:
    """Number of mask pixels (non-zero counts as mask)."""
    return int(np.count_nonzero(mask))


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight (x, y, w, h) box in pixels; (0, 0, 0, 0) for an empty mask."""
    m = _mask2d(mask)
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    if rows.size == 0:
        return 0, 0, 0, 0
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of a (width x height) image, in pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self):
        if not (math.isfinite(self.fx) and math.isfinite(self.fy) and self.fx > 0 and self.fy > 0):
            raise GeometryError(f"focal lengths must be finite and > 0, got fx={self.fx}, fy={self.fy} "
                                "(an all-zero K means an uncalibrated camera)")
        if not (math.isfinite(self.cx) and math.isfinite(self.cy)):
            raise GeometryError(f"principal point must be finite, got cx={self.cx}, cy={self.cy}")
        if self.width <= 0 or self.height <= 0:
            raise GeometryError(f"intrinsics size must be > 0, got {self.width}x{self.height}")

    @classmethod
    def from_k(cls, k, width: int, height: int) -> Intrinsics:
        """From the row-major 3x3 camera matrix K of sensor_msgs/CameraInfo (9 values or 3x3)."""
        a = np.asarray(k, dtype=np.float64).reshape(-1)
        if a.size != 9:
            raise GeometryError(f"K must have 9 values, got {a.size}")
        return cls(float(a[0]), float(a[4]), float(a[2]), float(a[5]), int(width), int(height))

    def check(self, shape: tuple[int, ...], what: str) -> None:
        if tuple(shape) != (self.height, self.width):
            raise GeometryError(f"{what} is {shape[1]}x{shape[0]} but the intrinsics are for "
                                f"{self.width}x{self.height}; no silent rescaling")


def _valid_depth(mask, depth_m, intrinsics: Intrinsics, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(mask pixels with valid depth, depth), both keeping every ``stride``-th row and column."""
    m, depth = _mask2d(mask), np.asarray(depth_m)
    if depth.shape != m.shape:
        raise GeometryError(f"depth has shape {depth.shape} but the mask {m.shape} (rows, cols); "
                            "no silent rescaling")
    intrinsics.check(m.shape, "the mask")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    m, depth = m[::stride, ::stride], depth[::stride, ::stride]
    return m & np.isfinite(depth) & (depth > 0), depth


def masked_points(mask: np.ndarray, depth_m: np.ndarray, intrinsics: Intrinsics, stride: int = 1,
                  max_points: int | None = None) -> np.ndarray:
    """(N, 3) float32 points, camera optical frame, of mask pixels with valid depth.

    ``stride`` keeps every stride-th row and column; ``max_points`` then keeps an
    evenly spaced subset, so N stays bounded for any mask size.
    """
    if max_points is not None and max_points < 0:
        raise ValueError(f"max_points must be >= 0, got {max_points}")
    valid, depth = _valid_depth(mask, depth_m, intrinsics, stride)
    v, u = np.nonzero(valid)
    if max_points is not None and v.size > max_points:
        pick = np.linspace(0, v.size - 1, max_points).astype(np.intp)
        v, u = v[pick], u[pick]
    z = depth[v, u].astype(np.float32, copy=False)
    out = np.empty((z.size, 3), np.float32)
    out[:, 0] = (u * stride - intrinsics.cx) * z / intrinsics.fx
    out[:, 1] = (v * stride - intrinsics.cy) * z / intrinsics.fy
    out[:, 2] = z
    return out


def centroid(mask: np.ndarray, depth_m: np.ndarray, intrinsics: Intrinsics,
             stride: int = 1) -> tuple[float, float, float]:
    """Mean (x, y, z) in metres of the masked points; NaNs when no mask pixel has valid depth.

    Computed from row and column sums of depth (no point list), so its cost does
    not grow with the mask: mean x = (sum(u z) - cx sum(z)) / (fx n), likewise y.
    """
    valid, depth = _valid_depth(mask, depth_m, intrinsics, stride)
    n = int(np.count_nonzero(valid))
    if n == 0:
        return _NAN3
    z = np.where(valid, depth, 0.0)
    cols, rows = z.sum(axis=0, dtype=np.float64), z.sum(axis=1, dtype=np.float64)
    sum_z = float(cols.sum())
    sum_uz = float(cols @ (np.arange(cols.size) * stride))
    sum_vz = float(rows @ (np.arange(rows.size) * stride))
    i = intrinsics
    return (sum_uz - i.cx * sum_z) / (i.fx * n), (sum_vz - i.cy * sum_z) / (i.fy * n), sum_z / n


def _ordered(masks_by_id: Mapping[int, np.ndarray], scores: Mapping[int, float] | None):
    """(id, mask) in painting order: the later one wins where masks overlap."""
    items = list(masks_by_id.items())
    if scores is not None:  # stable: equal scores keep the mapping's order
        items.sort(key=lambda kv: scores.get(kv[0], -math.inf))
    return items


MAX_MONO16_ID = 65535  # larger ids make the instance image 32-bit
MAX_INSTANCE_ID = 2**31 - 1  # 32SC1


def instance_image(masks_by_id: Mapping[int, np.ndarray], shape: tuple[int, int],
                   scores: Mapping[int, float] | None = None) -> np.ndarray:
    """(H, W) image, pixel = track id, 0 = background: uint16 while every id is at most 65535, int32 once
    one is larger (``image_codec.encode_instances``: mono16, or 32SC1; README, ``~/mask``).

    Overlaps: with ``scores`` the higher score wins, otherwise (and on ties) the
    id later in ``masks_by_id`` wins. Ids must lie in 1..2**31 - 1.
    """
    top = max(masks_by_id, default=0)
    out = np.zeros(shape, np.uint16 if top <= MAX_MONO16_ID else np.int32)
    for tid, mask in _ordered(masks_by_id, scores):
        if not 0 < tid <= MAX_INSTANCE_ID:
            raise GeometryError(f"track id {tid} does not fit an instance image (1..{MAX_INSTANCE_ID})")
        m = _mask2d(mask)
        if m.shape != out.shape:
            raise GeometryError(f"mask of track {tid} is {m.shape}, the image {out.shape}")
        out[m] = tid
    return out


def id_color(track_id: int) -> tuple[int, int, int]:
    """A bright colour per id, stable across frames (golden-ratio hue steps)."""
    hue = (track_id * 0.618033988749895) % 1.0
    k = (np.array([5.0, 3.0, 1.0]) + hue * 6.0) % 6.0
    rgb = 1.0 - 0.85 * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)  # HSV with S=0.85, V=1
    return tuple(round(float(c) * 255) for c in rgb)


def overlay(rgb: np.ndarray, masks_by_id: Mapping[int, np.ndarray], alpha: float = 0.5,
            outline: int = 2, scores: Mapping[int, float] | None = None) -> np.ndarray:
    """New rgb8 image: each mask blended in its id's colour, with its bbox outlined (``outline`` px)."""
    img = np.asarray(rgb)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise GeometryError(f"overlay needs an (H, W, 3) uint8 image, got {img.shape} {img.dtype}")
    out = img.copy()
    boxes = []
    for tid, mask in _ordered(masks_by_id, scores):
        m = _mask2d(mask)
        if m.shape != img.shape[:2]:
            raise GeometryError(f"mask of track {tid} is {m.shape}, the image {img.shape[:2]}")
        color = np.array(id_color(tid), np.float64)
        x, y, w, h = mask_bbox(m)
        boxes.append((x, y, w, h, color.astype(np.uint8)))
        # blended value of every input byte, per channel: one table lookup per masked pixel
        lut = np.rint((1.0 - alpha) * np.arange(256.0)[:, None] + alpha * color).astype(np.uint8)
        crop, inside = out[y:y + h, x:x + w], m[y:y + h, x:x + w]
        for c in range(3):
            channel = crop[..., c]
            np.copyto(channel, np.take(lut[:, c], channel), where=inside)
    for x, y, w, h, color in boxes:
        if w and outline > 0:
            t = min(outline, w, h)
            out[y:y + t, x:x + w] = color
            out[y + h - t:y + h, x:x + w] = color
            out[y:y + h, x:x + t] = color
            out[y:y + h, x + w - t:x + w] = color
    return out
