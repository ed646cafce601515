"""Mask geometry on hand-made masks with hand-computed answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sa2va_i_ros.imaging.geometry import (
    GeometryError,
    Intrinsics,
    centroid,
    id_color,
    instance_image,
    mask_area,
    mask_bbox,
    masked_points,
    overlay,
)

K = Intrinsics(fx=100.0, fy=200.0, cx=2.0, cy=1.0, width=8, height=6)


def rect(x0, y0, x1, y1, shape=(6, 8)) -> np.ndarray:
    """Mask with columns x0..x1-1 and rows y0..y1-1 set."""
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def test_bbox_and_area():
    m = rect(3, 2, 8, 5)
    assert mask_bbox(m) == (3, 2, 5, 3) and mask_area(m) == 15
    one = np.zeros((6, 8), np.uint8)
    one[5, 0] = 255
    assert mask_bbox(one) == (0, 5, 1, 1) and mask_area(one) == 1
    assert mask_bbox(np.zeros((6, 8), bool)) == (0, 0, 0, 0) and mask_area(np.zeros((6, 8))) == 0
    l_shape = rect(1, 1, 2, 5) | rect(1, 4, 6, 5)
    assert mask_bbox(l_shape) == (1, 1, 5, 4) and mask_area(l_shape) == 8


def test_intrinsics_from_k():
    k = [525.0, 0.0, 319.5, 0.0, 520.0, 239.5, 0.0, 0.0, 1.0]
    i = Intrinsics.from_k(k, 640, 480)
    assert (i.fx, i.fy, i.cx, i.cy, i.width, i.height) == (525.0, 520.0, 319.5, 239.5, 640, 480)
    assert Intrinsics.from_k(np.array(k).reshape(3, 3), 640, 480) == i


@pytest.mark.parametrize("k,size", [
    ([0.0] * 9, (640, 480)),
    ([math.nan, 0, 1, 0, 1, 1, 0, 0, 1], (640, 480)),
    ([1.0] * 8, (640, 480)),
    ([1, 0, 1, 0, 1, 1, 0, 0, 1], (0, 480)),
])
def test_intrinsics_reject_nonsense(k, size):
    with pytest.raises(GeometryError):
        Intrinsics.from_k(k, *size)


def test_points_of_a_plane_at_known_depth():
    depth = np.full((6, 8), 2.0, np.float32)
    pts = masked_points(rect(4, 3, 5, 4) | rect(0, 1, 1, 2), depth, K)
    # row-major order: (u=0, v=1) then (u=4, v=3); x = (u - cx) z / fx, y = (v - cy) z / fy
    np.testing.assert_allclose(pts, [[-0.04, 0.0, 2.0], [0.04, 0.02, 2.0]], atol=1e-6)
    assert pts.dtype == np.float32


def test_centroid_of_a_plane_rectangle():
    depth = np.full((6, 8), 2.0, np.float32)
    # columns 4..6 (mean u = 5), rows 2..3 (mean v = 2.5)
    x, y, z = centroid(rect(4, 2, 7, 4), depth, K)
    assert x == pytest.approx((5 - 2.0) * 2.0 / 100.0)
    assert y == pytest.approx((2.5 - 1.0) * 2.0 / 200.0)
    assert z == pytest.approx(2.0)


def test_invalid_depth_is_ignored():
    depth = np.full((6, 8), 3.0, np.float32)
    depth[0, 0], depth[0, 1], depth[0, 2], depth[0, 3], depth[0, 4] = np.nan, np.inf, 0.0, -1.0, -np.inf
    m = rect(0, 0, 6, 1)  # u = 0..5 on row 0: only u = 5 has valid depth
    pts = masked_points(m, depth, K)
    np.testing.assert_allclose(pts, [[(5 - 2.0) * 3.0 / 100.0, (0 - 1.0) * 3.0 / 200.0, 3.0]], atol=1e-6)


def test_no_valid_depth_gives_nan_centroid():
    depth = np.zeros((6, 8), np.float32)
    assert masked_points(rect(0, 0, 8, 6), depth, K).shape == (0, 3)
    assert all(math.isnan(c) for c in centroid(rect(0, 0, 8, 6), depth, K))
    assert all(math.isnan(c) for c in centroid(np.zeros((6, 8), bool), depth + 1, K))


def test_sizes_must_match_exactly():
    with pytest.raises(GeometryError, match="depth"):
        masked_points(rect(0, 0, 2, 2), np.ones((3, 4), np.float32), K)
    small = Intrinsics(100.0, 100.0, 1.0, 1.0, width=4, height=3)
    with pytest.raises(GeometryError, match="no silent rescaling"):
        centroid(rect(0, 0, 2, 2), np.ones((6, 8), np.float32), small)


def test_stride_and_max_points_bound_n():
    depth = np.ones((6, 8), np.float32)
    full = rect(0, 0, 8, 6)
    pts = masked_points(full, depth, K, stride=2)
    assert pts.shape == (12, 3)
    u = pts[:, 0] * K.fx + K.cx
    v = pts[:, 1] * K.fy + K.cy
    np.testing.assert_allclose(np.unique(np.rint(u)), [0, 2, 4, 6])
    np.testing.assert_allclose(np.unique(np.rint(v)), [0, 2, 4])
    assert masked_points(full, depth, K, max_points=7).shape == (7, 3)
    assert masked_points(full, depth, K, max_points=0).shape == (0, 3)
    with pytest.raises(ValueError):
        masked_points(full, depth, K, stride=0)


def test_instance_image_overlaps():
    a, b = rect(0, 0, 4, 4), rect(2, 2, 6, 6)
    later = instance_image({3: a, 7: b}, (6, 8))
    assert later.dtype == np.uint16
    assert later[0, 0] == 3 and later[3, 3] == 7 and later[5, 5] == 7 and later[0, 7] == 0
    assert instance_image({7: b, 3: a}, (6, 8))[3, 3] == 3
    by_score = instance_image({3: a, 7: b}, (6, 8), scores={3: 0.9, 7: 0.4})
    assert by_score[3, 3] == 3 and by_score[5, 5] == 7
    with pytest.raises(GeometryError):
        instance_image({2**31: a}, (6, 8))
    with pytest.raises(GeometryError):
        instance_image({0: a}, (6, 8))
    with pytest.raises(GeometryError):
        instance_image({1: a}, (5, 8))


def test_instance_image_holds_any_track_id():
    """Track ids above 65535 (a node that ran for long) keep their value: the image becomes int32 (once
    this raised "does not fit", and every multi-object frame of such a node lost its mask)."""
    a, b = rect(0, 0, 4, 4), rect(2, 2, 6, 6)
    image = instance_image({3: a, 70_000: b, 2**31 - 1: rect(6, 5, 8, 6)}, (6, 8))
    assert image.dtype == np.int32
    assert image[0, 0] == 3 and image[3, 3] == 70_000 and image[5, 7] == 2**31 - 1 and image[0, 7] == 0


def test_overlay_blends_and_outlines():
    rgb = np.full((10, 12, 3), 100, np.uint8)
    m = rect(2, 3, 9, 8, shape=(10, 12))
    out = overlay(rgb, {4: m}, alpha=0.5, outline=1)
    color = np.array(id_color(4), np.float64)
    np.testing.assert_array_equal(out[5, 5], np.rint(0.5 * 100 + 0.5 * color))
    for y, x in ((3, 2), (3, 8), (7, 2), (7, 8), (3, 5), (5, 2)):
        np.testing.assert_array_equal(out[y, x], color)
    np.testing.assert_array_equal(out[0, 0], [100, 100, 100])
    assert (rgb == 100).all() and out.dtype == np.uint8
    no_box = overlay(rgb, {4: m}, alpha=0.5, outline=0)
    np.testing.assert_array_equal(no_box[3, 2], no_box[5, 5])
    assert (overlay(rgb, {}) == rgb).all()
    with pytest.raises(GeometryError):
        overlay(rgb, {4: rect(0, 0, 1, 1)})


def test_id_colours_differ():
    colours = {id_color(i) for i in range(1, 21)}
    assert len(colours) == 20
    assert all(0 <= c <= 255 for col in colours for c in col)


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_centroid_equals_mean_of_points(stride):
    rng = np.random.default_rng(stride)
    depth = rng.uniform(0.2, 4.0, (30, 40)).astype(np.float32)
    depth[rng.random((30, 40)) < 0.2] = 0.0
    depth[rng.random((30, 40)) < 0.1] = np.nan
    depth[rng.random((30, 40)) < 0.05] = np.inf
    mask = rng.random((30, 40)) < 0.5
    intr = Intrinsics(fx=55.0, fy=60.0, cx=19.3, cy=14.8, width=40, height=30)
    pts = masked_points(mask, depth, intr, stride=stride)
    assert pts.shape[0] > 10 and np.isfinite(pts).all()
    np.testing.assert_allclose(centroid(mask, depth, intr, stride), pts.astype(np.float64).mean(axis=0),
                               rtol=1e-5, atol=1e-6)
