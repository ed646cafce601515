"""Region similarity J and boundary F-measure exactly as the DAVIS benchmark computes them.

Each function says which function of davis2017-evaluation's ``davis2017/metrics.py``
it mirrors; MeViS', Sa2VA's and ReferFormer's evaluation scripts use those
functions unchanged. The official code needs OpenCV and scikit-image for one
dilation; ``disk`` and ``dilate`` reproduce ``skimage.morphology.disk`` and
``cv2.dilate`` (default anchor and border) for binary images with numpy only.

Aggregation (Ref-VOS convention, MeViS' and Sa2VA's ``eval_mevis.py``): per
expression J and F are means over all frames of the video; the dataset's J and
F are means over expressions and J&F = (J + F) / 2. docs/EVALUATION.md says
where ReferFormer's Ref-DAVIS17 protocol differs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BOUND_TH = 0.008


def _as_2d(name: str, array) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D mask, got shape {array.shape}")
    return array


def _check_shapes(annotation: np.ndarray, segmentation: np.ndarray) -> None:
    if annotation.shape != segmentation.shape:
        raise ValueError(f"ground truth {annotation.shape} and prediction {segmentation.shape} differ")


def _keep(shape: tuple[int, ...], void_pixels) -> np.ndarray:
    if void_pixels is None:
        return np.ones(shape, bool)
    void_pixels = np.asarray(void_pixels)
    if void_pixels.shape != shape:
        raise ValueError(f"void pixels {void_pixels.shape} and masks {shape} differ in shape")
    return ~void_pixels.astype(bool)


def db_eval_iou(annotation, segmentation, void_pixels=None):
    """J = |S ∩ G| / |S ∪ G| over non-void pixels, 1 when the union is empty (``db_eval_iou``).

    Like the official function it takes one (H, W) mask (returns a float) or a
    (T, H, W) stack (returns one value per frame).
    """
    annotation, segmentation = np.asarray(annotation), np.asarray(segmentation)
    _check_shapes(annotation, segmentation)
    annotation, segmentation = annotation.astype(bool), segmentation.astype(bool)
    keep = _keep(annotation.shape, void_pixels)
    inters = np.sum(segmentation & annotation & keep, axis=(-2, -1))
    union = np.sum((segmentation | annotation) & keep, axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        j = inters / union
    if j.ndim == 0:
        return 1.0 if np.isclose(union, 0) else float(j)
    j[np.isclose(union, 0)] = 1
    return j


def db_eval_boundary(annotation, segmentation, void_pixels=None, bound_th: float = BOUND_TH):
    """F per frame of a (T, H, W) stack, or of one (H, W) mask (``db_eval_boundary``)."""
    annotation, segmentation = np.asarray(annotation), np.asarray(segmentation)
    _check_shapes(annotation, segmentation)
    if annotation.ndim == 2:
        return f_measure(segmentation, annotation, void_pixels, bound_th)
    if annotation.ndim != 3:
        raise ValueError(f"db_eval_boundary does not support tensors with {annotation.ndim} dimensions")
    voids = [None] * len(annotation) if void_pixels is None else np.asarray(void_pixels)
    return np.array([f_measure(s, a, v, bound_th)
                     for s, a, v in zip(segmentation, annotation, voids, strict=True)])


def f_measure(foreground_mask, gt_mask, void_pixels=None, bound_th: float = BOUND_TH) -> float:
    """Boundary F-measure of a predicted mask against the ground truth (``f_measure``).

    Boundaries come from ``seg2bmap``; a boundary pixel matches when the other
    mask's boundary lies within ``bound_pix`` = ``bound_th`` pixels if it is >= 1,
    else ceil(bound_th * image diagonal), i.e. inside a dilation by ``disk``.
    Official edge cases: no boundary in either -> F = 1; in only one -> F = 0.
    """
    foreground_mask, gt_mask = _as_2d("foreground_mask", foreground_mask), _as_2d("gt_mask", gt_mask)
    _check_shapes(gt_mask, foreground_mask)
    keep = _keep(foreground_mask.shape, void_pixels)
    bound_pix = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(foreground_mask.shape))
    fg_boundary = seg2bmap(foreground_mask.astype(bool) & keep)
    gt_boundary = seg2bmap(gt_mask.astype(bool) & keep)
    n_fg, n_gt = np.sum(fg_boundary), np.sum(gt_boundary)
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        selem = disk(bound_pix)
        # Every boundary pixel, matched or matching, lies in this box: dilating only the box is exact.
        window = _bounding_box(fg_boundary | gt_boundary)
        fg_boundary, gt_boundary = fg_boundary[window], gt_boundary[window]
        precision = np.sum(fg_boundary & dilate(gt_boundary, selem)) / float(n_fg)
        recall = np.sum(gt_boundary & dilate(fg_boundary, selem)) / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def seg2bmap(seg, width: int | None = None, height: int | None = None) -> np.ndarray:
    """One-pixel boundary map of a mask, offset half a pixel towards the origin (``_seg2bmap``).

    A pixel is on the boundary when it differs from its east, south or
    south-east neighbour, among those inside the image: the last row compares
    east only, the last column south only, the bottom-right pixel is never on
    it, so a mask edge lying on the image border has no boundary there.

    A map size other than the mask's takes the official code's path verbatim,
    quirks included: pixel (y, x) goes to (1 + floor(y - 1 + height / h),
    1 + floor(x - 1 + width / h)) -- ``width / h``, not ``width / w`` -- in a
    float map, and an index past the map raises IndexError. Its assertion
    ``width > w | height > h | ...`` parses as the chained comparison
    ``width > (w | height) > ...``, which fails (there with a TypeError) exactly
    when ``width > (w | height)``: that case raises ValueError here.
    """
    seg = _as_2d("seg", seg).astype(bool)
    h, w = seg.shape
    width = w if width is None else width
    height = h if height is None else height
    if width > (w | height):
        raise ValueError(f"can't convert {w}x{h} seg to {width}x{height} bmap")
    e, s, se = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    if w == width and h == height:
        return b
    bmap = np.zeros((height, width))
    ys, xs = np.nonzero(b)
    rows = 1 + np.floor((ys - 1) + height / h).astype(np.int64)
    cols = 1 + np.floor((xs - 1) + width / h).astype(np.int64)
    bmap[rows, cols] = 1
    return bmap


def disk(radius: float) -> np.ndarray:
    """``skimage.morphology.disk(radius)``: uint8, 1 where X² + Y² <= r² for X, Y in arange(-r, r + 1)."""
    grid = np.arange(-radius, radius + 1)
    x, y = np.meshgrid(grid, grid)
    return np.array((x**2 + y**2) <= radius**2, dtype=np.uint8)


def dilate(image, selem) -> np.ndarray:
    """Binary ``cv2.dilate(image, selem)`` with OpenCV's defaults, as a bool array.

    out[y, x] = OR of image[y + i - ay, x + j - ax] over the nonzero selem[i, j],
    anchor (ay, ax) = (rows // 2, cols // 2), pixels outside the image count as
    0. Each run of a kernel row is a horizontal window sum (one cumulative sum)
    shifted vertically, so the cost grows with the kernel's height, not its area.
    """
    image = _as_2d("image", image).astype(bool)
    selem = _as_2d("selem", selem).astype(bool)
    h, w = image.shape
    kh, kw = selem.shape
    ay, ax = kh // 2, kw // 2
    pad = max(ax, kw - 1 - ax)
    csum = np.zeros((h, w + 2 * pad + 1), np.int32)
    np.cumsum(np.pad(image, ((0, 0), (pad, pad))), axis=1, out=csum[:, 1:])
    out = np.zeros((h, w), bool)
    for i in range(kh):
        dy = i - ay
        if abs(dy) >= h:
            continue
        for j0, j1 in _runs(selem[i]):
            lo, hi = j0 - ax, j1 - ax
            hit = csum[:, pad + hi + 1 : pad + hi + 1 + w] > csum[:, pad + lo : pad + lo + w]
            if dy >= 0:
                out[: h - dy] |= hit[dy:]
            else:
                out[-dy:] |= hit[: h + dy]
    return out


def _runs(row: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) column of each run of True in a kernel row."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], row.astype(np.int8), [0]))))
    return list(zip(edges[::2].tolist(), (edges[1::2] - 1).tolist(), strict=True))


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def expression_scores(gt_masks: Sequence[np.ndarray], pred_masks: Sequence[np.ndarray],
                      bound_th: float = BOUND_TH) -> tuple[float, float]:
    """(J, F) of one expression: means over its frames, as ``eval_mevis.py`` computes them."""
    if len(gt_masks) != len(pred_masks):
        raise ValueError(f"{len(pred_masks)} predicted masks for {len(gt_masks)} ground-truth frames")
    if not gt_masks:
        raise ValueError("an expression needs at least one frame")
    j = np.mean([db_eval_iou(g, p) for g, p in zip(gt_masks, pred_masks, strict=True)])
    f = np.mean([f_measure(p, g, bound_th=bound_th) for g, p in zip(gt_masks, pred_masks, strict=True)])
    return float(j), float(f)


def dataset_scores(js: Sequence[float], fs: Sequence[float]) -> dict[str, float]:
    """Dataset J, F (means over expressions) and J&F = (J + F) / 2."""
    if not js or len(js) != len(fs):
        raise ValueError("need one J and one F per expression, and at least one expression")
    j, f = float(np.mean(js)), float(np.mean(fs))
    return {"J": j, "F": f, "J&F": (j + f) / 2}
