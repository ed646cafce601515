"""J and F against hand-computed values and naive loop implementations of the DAVIS definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sa2va_i_ros.offline.evaluation.metrics import (
    dataset_scores,
    db_eval_boundary,
    db_eval_iou,
    dilate,
    disk,
    expression_scores,
    f_measure,
    seg2bmap,
)


# -- naive references ------------------------------------------------------------------------------
def naive_disk(radius: int) -> np.ndarray:
    size = 2 * radius + 1
    out = np.zeros((size, size), np.uint8)
    for i in range(size):
        for j in range(size):
            out[i, j] = (i - radius) ** 2 + (j - radius) ** 2 <= radius**2
    return out


def naive_dilate(image: np.ndarray, selem: np.ndarray) -> np.ndarray:
    """cv2.dilate's definition, pixel by pixel: anchor at (rows // 2, cols // 2), outside = 0."""
    h, w = image.shape
    ay, ax = selem.shape[0] // 2, selem.shape[1] // 2
    out = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            for i in range(selem.shape[0]):
                for j in range(selem.shape[1]):
                    yy, xx = y + i - ay, x + j - ax
                    if selem[i, j] and 0 <= yy < h and 0 <= xx < w and image[yy, xx]:
                        out[y, x] = True
    return out


def naive_boundary(seg: np.ndarray) -> np.ndarray:
    """A pixel differing from its east, south or south-east neighbour, among those inside the image."""
    h, w = seg.shape
    out = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            for dy, dx in ((0, 1), (1, 0), (1, 1)):
                if y + dy < h and x + dx < w and seg[y, x] != seg[y + dy, x + dx]:
                    out[y, x] = True
    return out


def naive_f(pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008) -> float:
    """F with explicit loops over boundary pixels: matched when within Euclidean distance bound_pix."""
    h, w = gt.shape
    bound_pix = bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(h, w))
    fg, gt_b = np.argwhere(naive_boundary(pred)), np.argwhere(naive_boundary(gt))
    if len(fg) == 0 or len(gt_b) == 0:
        return 1.0 if len(fg) == len(gt_b) else 0.0

    def matched(points, others) -> int:
        count = 0
        for p in points:
            if (np.hypot(*(others - p).T) <= bound_pix).any():
                count += 1
        return count

    precision, recall = matched(fg, gt_b) / len(fg), matched(gt_b, fg) / len(gt_b)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def square(size=(40, 40), top=10, left=10, side=10) -> np.ndarray:
    m = np.zeros(size, bool)
    m[top : top + side, left : left + side] = True
    return m


def blobs(rng: np.random.Generator, shape: tuple[int, int], count: int = 3) -> np.ndarray:
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    m = np.zeros(shape, bool)
    for _ in range(count):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(2, max(3, min(h, w) // 3))
        if rng.random() < 0.5:
            m |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
        else:
            m[max(cy - r, 0) : cy + r, max(cx - r // 2, 0) : cx + r] = True
    return m


# -- J ---------------------------------------------------------------------------------------------
def test_identity_scores_one():
    m = blobs(np.random.default_rng(0), (60, 80))
    assert db_eval_iou(m, m) == 1.0
    assert f_measure(m, m) == 1.0


def test_empty_against_empty_scores_one():
    empty = np.zeros((30, 40), bool)
    assert db_eval_iou(empty, empty) == 1.0
    assert f_measure(empty, empty) == 1.0


@pytest.mark.parametrize("pred_empty", [True, False])
def test_one_side_empty_scores_zero(pred_empty):
    m, empty = square(), np.zeros((40, 40), bool)
    pred, gt = (empty, m) if pred_empty else (m, empty)
    assert db_eval_iou(gt, pred) == 0.0
    assert f_measure(pred, gt) == 0.0


def test_disjoint_scores_zero():
    a, b = square(top=2, left=2, side=6), square(top=25, left=25, side=6)
    assert db_eval_iou(a, b) == 0.0
    assert f_measure(b, a) == 0.0


@pytest.mark.parametrize(("shift", "j", "f"), [(1, 90 / 110, 1.0), (3, 70 / 130, 0.5)])
def test_shifted_square_by_hand(shift, j, f):
    """40x40: bound_pix = ceil(0.008 * 56.6) = 1; 40 boundary pixels each. A shift of 1 keeps every
    boundary pixel within 1 of the other boundary; a shift of 3 matches 20 of 40 both ways."""
    gt, pred = square(), square(left=10 + shift)
    assert db_eval_iou(gt, pred) == pytest.approx(j, abs=1e-15)
    assert f_measure(pred, gt) == pytest.approx(f, abs=1e-15)
    assert f_measure(pred, gt) == pytest.approx(naive_f(pred, gt), abs=1e-15)


def test_void_pixels_are_ignored():
    gt = square()
    void = np.zeros_like(gt)
    void[25:35, 25:35] = True
    pred = gt | void  # extra prediction only inside the void region
    assert db_eval_iou(gt, pred) < 1.0
    assert db_eval_iou(gt, pred, void) == 1.0
    assert f_measure(pred, gt) < 1.0
    assert f_measure(pred, gt, void) == 1.0
    everything_void = np.ones_like(gt)
    assert db_eval_iou(gt, pred, everything_void) == 1.0  # empty union outside the void


def test_iou_of_a_stack_is_per_frame():
    rng = np.random.default_rng(1)
    gt = np.stack([blobs(rng, (30, 40)) for _ in range(4)] + [np.zeros((30, 40), bool)])
    pred = np.stack([blobs(rng, (30, 40)) for _ in range(4)] + [np.zeros((30, 40), bool)])
    per_frame = db_eval_iou(gt, pred)
    assert per_frame.shape == (5,)
    assert per_frame[-1] == 1.0
    assert np.array_equal(per_frame, [db_eval_iou(g, p) for g, p in zip(gt, pred, strict=True)])
    per_frame_f = [f_measure(p, g) for g, p in zip(gt, pred, strict=True)]
    assert np.array_equal(db_eval_boundary(gt, pred), per_frame_f)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ"):
        db_eval_iou(np.zeros((4, 5)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="differ"):
        f_measure(np.zeros((4, 5)), np.zeros((5, 4)))


# -- F building blocks -----------------------------------------------------------------------------
def test_disk_equals_naive_disk():
    assert np.array_equal(disk(1), [[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    assert np.array_equal(disk(2), [[0, 0, 1, 0, 0], [0, 1, 1, 1, 0], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0],
                                    [0, 0, 1, 0, 0]])
    for r in range(13):
        assert np.array_equal(disk(r), naive_disk(r)), r
        assert np.array_equal(disk(float(r)), naive_disk(r)), r  # f_measure passes np.ceil(...), a float
    assert disk(3).dtype == np.uint8


def test_dilate_equals_naive_dilation():
    rng = np.random.default_rng(2)
    kernels = [disk(r) for r in range(5)] + [
        rng.random((3, 4)) < 0.5,  # even width: the anchor is at column 2, as OpenCV puts it
        rng.random((2, 5)) < 0.6,
        np.array([[0, 1, 0, 1, 1]]),  # two runs in one row
        np.ones((1, 1)),
        disk(9),  # larger than the image
    ]
    for shape in ((13, 17), (7, 5)):
        for kernel in kernels:
            image = rng.random(shape) < 0.08
            assert np.array_equal(dilate(image, kernel), naive_dilate(image, kernel)), (shape, kernel)


def test_boundary_map_equals_the_neighbour_rule():
    rng = np.random.default_rng(3)
    for shape in ((1, 1), (1, 6), (6, 1), (9, 11), (30, 24)):
        seg = rng.random(shape) < 0.5
        assert np.array_equal(seg2bmap(seg), naive_boundary(seg)), shape


def test_boundary_of_a_square_lies_half_a_pixel_towards_the_origin():
    b = seg2bmap(square())
    expected = np.zeros((40, 40), bool)
    expected[9, 9:20] = expected[10:20, 9] = True  # outside, above and left
    expected[19, 10:20] = expected[10:20, 19] = True  # inside, bottom row and right column
    assert np.array_equal(b, expected)
    assert b.sum() == 40


def test_mask_edges_on_the_image_border_have_no_boundary():
    full = np.ones((20, 30), bool)
    assert not seg2bmap(full).any()
    assert f_measure(full, full) == 1.0
    half = np.zeros((20, 30), bool)
    half[:, 15:] = True  # its only boundary is the vertical edge at column 14
    assert np.array_equal(np.argwhere(seg2bmap(half))[:, 1], [14] * 20)
    assert f_measure(full, half) == 0.0  # prediction without boundary, ground truth with one
    assert db_eval_iou(half, full) == 0.5


def test_boundary_map_of_another_size_follows_the_official_code():
    seg = np.zeros((4, 4), bool)
    seg[1:3, 1:3] = True
    b = seg2bmap(seg)
    up = seg2bmap(seg, width=8, height=8)  # (y, x) -> (1 + floor(y - 1 + 8/4), 1 + floor(x - 1 + 8/4))
    assert up.dtype == np.float64 and up.shape == (8, 8)
    assert np.array_equal(np.argwhere(up), np.argwhere(b) + 2)
    tall = np.zeros((4, 2), bool)
    tall[1:3, 0] = True
    # The official column formula divides width by h, not w: x -> 1 + floor(x - 1 + 4/4) = x + 1.
    moved = np.argwhere(seg2bmap(tall, width=4, height=8))
    assert np.array_equal(moved, np.argwhere(seg2bmap(tall)) + [2, 1])
    with pytest.raises(ValueError, match="can't convert"):
        seg2bmap(seg, width=8, height=4)  # width > (w | height): the official assertion fails


# -- F against the independent reference ---------------------------------------------------------
@pytest.mark.parametrize("shape", [(37, 53), (90, 120), (240, 320)])
def test_f_measure_equals_naive_f(shape):
    """bound_pix is 1, 2 and 4 for these sizes."""
    rng = np.random.default_rng(sum(shape))
    for _ in range(3):
        gt = blobs(rng, shape)
        pred = np.roll(gt, tuple(rng.integers(-4, 5, 2)), axis=(0, 1)) ^ blobs(rng, shape, 1)
        assert f_measure(pred, gt) == pytest.approx(naive_f(pred, gt), abs=1e-12)


def test_bound_th_of_one_or_more_is_in_pixels():
    gt, pred = square(), square(left=13)
    assert f_measure(pred, gt, bound_th=3) == 1.0
    assert f_measure(pred, gt, bound_th=2) == pytest.approx(naive_f(pred, gt, bound_th=2), abs=1e-15)
    assert f_measure(pred, gt, bound_th=2) < 1.0


# -- aggregation -----------------------------------------------------------------------------------
def test_expression_and_dataset_means():
    gt = [square(), square(), np.zeros((40, 40), bool)]
    pred = [square(), square(left=13), square()]
    j, f = expression_scores(gt, pred)
    assert j == pytest.approx((1 + 7 / 13 + 0) / 3, abs=1e-15)
    assert f == pytest.approx((1 + 0.5 + 0) / 3, abs=1e-15)
    scores = dataset_scores([1.0, 0.5], [0.5, 0.0])
    assert scores == {"J": 0.75, "F": 0.25, "J&F": 0.5}
    with pytest.raises(ValueError):
        expression_scores(gt, pred[:2])
