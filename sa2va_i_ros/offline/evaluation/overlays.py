"""Overlay strips of the best and worst expressions, kept while a rank evaluates.

A strip shows a few frames of the video spread over its length, the
prediction tinted blue and the ground truth's outline in yellow. Each rank
keeps the strips of its own best and worst ``k`` expressions (by J&F, ties
by key) and deletes the ones that fall out; the dataset's best and worst
``k`` are always among the union of the ranks' (and of earlier, resumed
invocations'), so rank 0 picks them from the files on disk and prunes the rest.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

PRED_TINT = np.array([40, 120, 255], np.float32)
GT_EDGE = np.array([255, 220, 0], np.uint8)


def file_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", key.replace("/", "__")) + ".png"


def outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of the mask with a 4-neighbour outside it (image borders count as outside)."""
    padded = np.pad(mask, 1)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def overlay_frame(frame: np.ndarray, gt: np.ndarray | None, pred: np.ndarray, height: int) -> np.ndarray:
    """One frame scaled to ``height`` rows, prediction tinted, ground-truth outline drawn."""
    h, w = frame.shape[:2]
    width = max(1, round(w * height / h))
    size = (width, height)
    img = np.asarray(Image.fromarray(frame).resize(size, Image.BILINEAR), np.float32)
    small_pred = np.asarray(Image.fromarray(pred.astype(np.uint8) * 255).resize(size, Image.NEAREST)) > 127
    img[small_pred] = 0.45 * img[small_pred] + 0.55 * PRED_TINT
    out = img.round().clip(0, 255).astype(np.uint8)
    if gt is not None:
        small_gt = np.asarray(Image.fromarray(gt.astype(np.uint8) * 255).resize(size, Image.NEAREST)) > 127
        out[outline(small_gt)] = GT_EDGE
    return out


def overlay_strip(frames, gts, preds, count: int = 4, height: int = 160) -> np.ndarray:
    """``count`` frames spread over the video (first and last included), side by side."""
    picks = sorted(set(np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int).tolist()))
    tiles = [overlay_frame(frames[k], None if gts is None else gts[k], preds[k], height) for k in picks]
    gap = np.full((height, 4, 3), 255, np.uint8)
    parts = []
    for tile in tiles:
        parts += [tile, gap]
    return np.concatenate(parts[:-1], axis=1)


class ExtremesKeeper:
    """The overlay files of one rank's best and worst ``k`` expressions in ``folder``."""

    def __init__(self, folder: Path, k: int):
        self.folder, self.k = folder, k
        self.best: list[tuple[float, str]] = []  # (score, key), best first
        self.worst: list[tuple[float, str]] = []  # worst first

    def _rank(self, score: float, key: str) -> tuple[bool, bool]:
        best = sorted([*self.best, (score, key)], key=lambda t: (-t[0], t[1]))[: self.k]
        worst = sorted([*self.worst, (score, key)], key=lambda t: (t[0], t[1]))[: self.k]
        self._next = best, worst
        return (score, key) in best, (score, key) in worst

    def offer(self, key: str, score: float, make_image) -> bool:
        """Keep the expression's strip if it is among the best or worst so far; ``make_image()`` -> RGB array."""
        if self.k < 1:
            return False
        in_best, in_worst = self._rank(score, key)
        if not (in_best or in_worst):
            return False
        before = {k for _, k in (*self.best, *self.worst)}
        self.best, self.worst = self._next
        self.folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(make_image()).save(self.folder / file_name(key))
        after = {k for _, k in (*self.best, *self.worst)}
        for dropped in before - after:
            (self.folder / file_name(dropped)).unlink(missing_ok=True)
        return True


def pick_extremes(records: list[dict], folder: Path, k: int) -> tuple[list[dict], list[dict]]:
    """The best and worst ``k`` scored records whose strip exists; every other strip is deleted."""
    scored = [r for r in records if "J&F" in r and (folder / file_name(f"{r['video']}/{r['eid']}")).is_file()]
    best = sorted(scored, key=lambda r: (-r["J&F"], f"{r['video']}/{r['eid']}"))[:k]
    worst = sorted(scored, key=lambda r: (r["J&F"], f"{r['video']}/{r['eid']}"))[:k]
    keep = {file_name(f"{r['video']}/{r['eid']}") for r in (*best, *worst)}
    if folder.is_dir():
        for path in folder.glob("*.png"):
            if path.name not in keep:
                path.unlink(missing_ok=True)
    return best, worst
