"""Rank 0's plan before a run: does each output folder fit the request, what is left, which rank does what.

A resumed run must keep the options that change the numbers (``result_options``):
otherwise its folder would mix results of two different runs. What is left is
split over the ranks by frame count (``sharding``); the plan's run id tells this
run's completion markers from those of an earlier one.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from sa2va_i_ros.offline.evaluation.datasets import Expression
from sa2va_i_ros.offline.evaluation.distributed import Markers
from sa2va_i_ros.offline.evaluation.settings import EvalSettings, knobs
from sa2va_i_ros.offline.evaluation.sharding import shard
from sa2va_i_ros.offline.evaluation.store import Merged, write_atomic
from sa2va_i_ros.offline.evaluation.worker import Cell

# Options that change the numbers besides the settings: a resumed run must keep them.
RUN_OPTIONS = ("dataset", "split", "model", "revision", "dtype", "original_sam2", "q_frame_file")

Item = tuple[int, int]  # (setting index, expression index)


class UsageError(Exception):
    """The request does not fit: the output folder (exists without --resume, other options) or an input file."""


def result_options() -> tuple[str, ...]:
    return RUN_OPTIONS + tuple(knobs())


def check_folder(cell: Cell, order: list[str], resume: bool, say: Callable[[str], None]) -> Merged:
    """A new run: an empty folder (UsageError if it holds results). --resume: what the folder holds, merged,
    if its run had the same options (else UsageError)."""
    folder, path = cell.folder, cell.folder.path
    if not resume:
        if folder.has_results():
            raise UsageError(f"{folder.results_path} exists: pass --resume to continue that run, or another --out")
        path.mkdir(parents=True, exist_ok=True)
        for part in folder.part_files():
            part.unlink()
        folder.results_path.write_text("")
        return Merged()
    summary_path = path / "summary.json"
    if summary_path.exists():
        try:
            before = json.loads(summary_path.read_text(encoding="utf-8"))["options"]
            defaults = EvalSettings().as_dict()
            changed = [f"{k} {before.get(k, defaults.get(k))!r} -> {cell.options[k]!r}"
                       for k in result_options() if before.get(k, defaults.get(k)) != cell.options[k]]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UsageError(f"{summary_path} is unreadable ({exc}): cannot check the run's options") from exc
        if changed:
            raise UsageError(f"{path} holds a run with other options ({'; '.join(changed)}); use a new --out")
    merged = folder.consolidate(order, remove_parts=True)
    if merged.dropped:
        say(f"dropped {merged.dropped} unreadable line(s) of {path} (cut short by a kill); "
            "those expressions are evaluated again")
    if merged.scored_twice:
        say(f"{path}: {len(merged.scored_twice)} expression(s) had two different results, the last kept: "
            f"{', '.join(merged.scored_twice[:5])}")
    return merged


def left(merged: Merged, ci: int, expressions: Sequence[Expression]) -> list[Item]:
    """The items of setting ``ci`` without a successful record in its folder."""
    done = {k for k, r in merged.records.items() if "error" not in r}
    return [(ci, ei) for ei, e in enumerate(expressions) if e.key not in done]


def assign(cells: Sequence[Cell], expressions: Sequence[Expression], items: list[Item],
           world_size: int) -> list[list[Item]]:
    """Each rank's share, balanced by frame count, ordered so that settings sharing a model come together
    (one model load per distinct model)."""
    costs = [len(expressions[ei].frames) for _, ei in items]
    load_order: dict = {}
    for ci, cell in enumerate(cells):
        load_order.setdefault(cell.settings.load_key(), ci)
    cell_order = [load_order[cell.settings.load_key()] for cell in cells]
    work = []
    for part in shard(costs, world_size):
        mine = [items[i] for i in part]
        mine.sort(key=lambda it: (cell_order[it[0]], it[0], it[1]))
        work.append(mine)
    return work


def open_parts(parts: Path, world_size: int, items: int) -> str:
    """A new run id: clears the completion markers of runs before and writes parts/run.json (every rank
    must read it: the check that --out is one folder shared by all)."""
    run_id = uuid.uuid4().hex
    parts.mkdir(parents=True, exist_ok=True)
    Markers(parts, run_id).clear()
    write_atomic(parts / "run.json", json.dumps({"run_id": run_id, "world_size": world_size,
                                                 "items": items, "time": time.time()}))
    return run_id
