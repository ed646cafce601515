"""One rank's share of an evaluation: segment, score, log each expression as it finishes.

Models are loaded lazily, one per distinct load-stage setting, and reused for
every grid setting that shares it (the rank's work is ordered so that they come
together). Each record goes to the rank's own part file with one write, then
fsync, so a killed rank loses at most the expression it was working on.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm import tqdm

from sa2va_i_ros.errors import Sa2VAError
from sa2va_i_ros.offline.evaluation.datasets import DatasetError, Expression
from sa2va_i_ros.offline.evaluation.metrics import expression_scores
from sa2va_i_ros.offline.evaluation.overlays import ExtremesKeeper, overlay_strip
from sa2va_i_ros.offline.evaluation.settings import EvalSettings
from sa2va_i_ros.offline.evaluation.store import RunFolder, append_record

# Test-only fault injection: "rank=R,after=K" makes rank R kill itself (SIGKILL, no clean-up) once it has
# logged K records, as a crashed machine would; "rank=R,after=K,raise=1" makes its next expression raise
# RuntimeError instead, as a failing GPU would.
FAULT_ENV = "SA2VA_I_EVAL_FAULT"


class InjectedFault(RuntimeError):
    """Raised by the test-only fault hook."""


class VideoSegmenter(Protocol):
    """What the tool needs from a model: Sa2VA-i's video protocol."""

    def segment(self, frames: list[np.ndarray], query: str, **settings) -> list[np.ndarray]:
        """One bool (H, W) mask per (H, W, 3) uint8 RGB frame; ``settings``: EvalSettings.call_kwargs()."""
        ...


Extra = Callable[[EvalSettings, Expression], dict]


class LoadFailed(RuntimeError):
    """The model could not be loaded."""


@dataclass
class Cell:
    """One evaluation setting and its output folder (the whole run, or one point of a grid)."""

    settings: EvalSettings
    folder: RunFolder
    options: dict
    label: str


@dataclass
class Failure:
    key: str
    text: str
    error: str
    code: int  # exit status the tool should end with


def evaluate_expression(expr: Expression, frames: list[np.ndarray], segmenter: VideoSegmenter,
                        settings: EvalSettings, out: Path, save_masks: bool = False,
                        keeper: ExtremesKeeper | None = None, extra: Extra | None = None) -> dict:
    """One results record: J, F, J&F (when the split has ground truth) or the error.

    ``extra(settings, expr)``: per-expression keyword arguments for ``segment`` (SaSaSa2VA's q_frame
    selection); a ValueError there is this expression's error."""
    from sa2va_i_ros.offline.media import write_mask

    record = {"video": expr.video, "eid": expr.eid, "exp": expr.text, "frames": len(frames),
              "seen": settings.frames_seen(len(frames))}
    t0 = time.perf_counter()
    try:
        options = {**settings.call_kwargs(), **(extra(settings, expr) if extra else {})}
        masks = segmenter.segment(frames, expr.text, **options)
        masks = checked_masks(masks, frames)
    except (Sa2VAError, ValueError) as exc:
        record.update(error=f"{type(exc).__name__}: {exc}", seconds=round(time.perf_counter() - t0, 3))
        return record
    record["seconds"] = round(time.perf_counter() - t0, 3)
    gt = expr.gt_masks()
    if gt is None or save_masks:
        folder = out / "Annotations" / expr.video / expr.eid
        folder.mkdir(parents=True, exist_ok=True)
        for name, mask in zip(expr.frame_names, masks, strict=True):
            write_mask(folder / f"{name}.png", mask)
        record["masks"] = str(folder.relative_to(out))
    if gt is not None:
        sizes = {g.shape for g in gt}
        if sizes != {masks[0].shape}:
            raise DatasetError(f"{expr.key}: ground truth of size {sorted(sizes)}, frames {masks[0].shape}")
        j, f = expression_scores(gt, masks)
        record.update({"J": j, "F": f, "J&F": (j + f) / 2})
        if keeper is not None:
            keeper.offer(expr.key, record["J&F"], lambda: overlay_strip(frames, gt, masks))
    return record


def checked_masks(masks, frames: list[np.ndarray]) -> list[np.ndarray]:
    masks = list(masks)
    if len(masks) != len(frames):
        raise ValueError(f"the model returned {len(masks)} masks for {len(frames)} frames")
    size = frames[0].shape[:2]
    for k, mask in enumerate(masks):
        if np.shape(mask) != size:
            raise ValueError(f"mask {k} is {np.shape(mask)}, the frames are {size}")
    return [np.asarray(m).astype(bool) for m in masks]


def parse_fault(text: str | None) -> tuple[int, int, bool] | None:
    """(rank, after, raise) of the fault hook, None when it is off."""
    if not text:
        return None
    try:
        fields = dict(part.split("=", 1) for part in text.split(","))
        return int(fields["rank"]), int(fields["after"]), fields.get("raise", "0") == "1"
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{FAULT_ENV} must look like rank=1,after=2[,raise=1], got {text!r}") from exc


class Worker:
    """Runs ``items`` ((cell index, expression index) pairs) on one rank."""

    def __init__(self, *, rank: int, world_size: int, cells: Sequence[Cell], expressions: Sequence[Expression],
                 load: Callable[[EvalSettings], VideoSegmenter], save_masks: bool, examples: int,
                 status: Callable[..., None], show_bar: bool, extra: Extra | None = None):
        self.rank, self.world_size = rank, world_size
        self.cells, self.expressions = cells, expressions
        self.load, self.save_masks, self.status, self.extra = load, save_masks, status, extra
        self.keepers = [ExtremesKeeper(c.folder.path / "overlays", examples) for c in cells]
        self.show_bar = show_bar
        self.load_s = 0.0
        self.fault = parse_fault(os.environ.get(FAULT_ENV))
        self._segmenter: tuple[tuple, VideoSegmenter | None] = ((), None)
        self.current: tuple[str, str] = ("", "")

    def segmenter(self, settings: EvalSettings) -> VideoSegmenter:
        key = settings.load_key()
        if self._segmenter[1] is None or self._segmenter[0] != key:
            self._segmenter = ((), None)  # free the previous model before loading another
            t0 = time.perf_counter()
            self._segmenter = (key, self.load(settings))
            self.load_s += time.perf_counter() - t0
        return self._segmenter[1]

    def run(self, items: Sequence[tuple[int, int]], on_record: Callable[[int, dict], None] | None = None
            ) -> Failure | None:
        """Evaluate every item; returns how the rank failed, or None. KeyboardInterrupt passes through."""
        bar = tqdm(total=len(items), unit="exp", desc=f"rank {self.rank}", position=1 if self.rank == 0 else 0,
                   leave=False, disable=not self.show_bar)
        handles: dict[int, object] = {}
        frames: tuple[str, list[np.ndarray]] = ("", [])
        try:
            for n, (ci, ei) in enumerate(items):
                cell, expr = self.cells[ci], self.expressions[ei]
                self.current = (expr.key, expr.text)
                self.status(cell=cell.label, key=expr.key, text=expr.text, done=n, total=len(items))
                if self.fault and self.fault[:2] == (self.rank, n):
                    if self.fault[2]:
                        raise InjectedFault(f"{FAULT_ENV}: injected fault")
                    os.kill(os.getpid(), signal.SIGKILL)
                segmenter = self.segmenter(cell.settings)
                if frames[0] != expr.video:
                    frames = (expr.video, expr.load_frames())
                record = evaluate_expression(expr, frames[1], segmenter, cell.settings, cell.folder.path,
                                             self.save_masks, self.keepers[ci], self.extra)
                if "error" in record:
                    tqdm.write(f"sa2va-i-eval: {expr.key} {expr.text!r}: {record['error']}", file=sys.stderr)
                if ci not in handles:
                    cell.folder.parts_dir.mkdir(parents=True, exist_ok=True)
                    handles[ci] = open(cell.folder.part_path(self.rank), "a", encoding="utf-8")  # noqa: SIM115
                append_record(handles[ci], record)
                bar.update(1)
                if on_record is not None:
                    on_record(ci, record)
            self.current = ("", "")
            self.status(cell="", key="", text="", done=len(items), total=len(items))
            return None
        except LoadFailed as exc:
            return Failure(*self.current, str(exc), 2)
        except DatasetError as exc:
            return Failure(*self.current, str(exc), 2)
        except Exception as exc:  # anything else (CUDA out of memory, a bug): report which expression and why
            traceback.print_exc()
            return Failure(*self.current, f"{type(exc).__name__}: {exc}", 1)
        finally:
            bar.close()
            for handle in handles.values():
                handle.close()
