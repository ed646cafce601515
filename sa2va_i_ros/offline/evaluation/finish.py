"""Rank 0's end of a run: merge a setting's parts, its HTML report, and the grid's ablation table.

The merge runs even after a failure or an interrupt (what is done is kept for
--resume); a missing matplotlib costs the report only, never the results.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from sa2va_i_ros.offline.evaluation import ablation
from sa2va_i_ros.offline.evaluation.datasets import Expression
from sa2va_i_ros.offline.evaluation.overlays import pick_extremes
from sa2va_i_ros.offline.evaluation.settings import knobs
from sa2va_i_ros.offline.evaluation.store import Merged, write_atomic
from sa2va_i_ros.offline.evaluation.worker import Cell

Say = Callable[[str], None]


def merge_folder(cell: Cell, order: list[str], clean: bool, say: Say) -> Merged:
    """The setting's parts merged into its results.jsonl (the parts removed only after a clean run)."""
    merged = cell.folder.consolidate(order, remove_parts=clean)
    if merged.dropped:
        say(f"dropped {merged.dropped} unreadable line(s) of {cell.folder.path}")
    if merged.scored_twice:
        say(f"{cell.folder.path}: expressions scored twice with different results: "
            f"{', '.join(merged.scored_twice[:5])}")
    return merged


def write_report(cell: Cell, summary: dict, merged: Merged, expressions: Sequence[Expression], examples: int,
                 say: Say) -> Path | None:
    """OUT/report/index.html with overlays of the ``examples`` best and worst expressions; None without one."""
    from sa2va_i_ros.offline.evaluation.report import ReportUnavailable, write_run_report

    records = [merged.records[e.key] for e in expressions if e.key in merged.records]
    overlays = cell.folder.path / "overlays"
    best, worst = pick_extremes(records, overlays, examples)
    try:
        return write_run_report(cell.folder.path, summary, records, best, worst, overlays)
    except ReportUnavailable as exc:
        say(str(exc))
        return None


def write_grid(out: Path, cells: Sequence[Cell], axes: list[str], summaries: list[dict],
               reports: list[Path | None], *, dataset: str, split: str, model: str, report: bool, say: Say) -> None:
    """OUT/ablation.md and .json (the table, also printed) and, with ``report``, the grid's HTML page."""
    settings = [c.settings for c in cells]
    rows = ablation.rows(settings, summaries, axes)
    name = f"{dataset} {split}".strip()
    header, body = ablation.table(rows, axes, name)
    fixed = {k: settings[0].shown(k) for k in knobs() if k not in axes}
    title = f"Ablation: {model} on {name}"
    text = ablation.markdown(header, body, fixed, title)
    write_atomic(out / "ablation.md", text)
    write_atomic(out / "ablation.json", json.dumps(
        {"dataset": dataset, "split": split, "model": model, "axes": axes,
         "fixed": fixed, "rows": rows, "folders": [str(c.folder.path) for c in cells]}, indent=2) + "\n")
    print(text)
    if report:
        from sa2va_i_ros.offline.evaluation.report import ReportUnavailable, write_grid_report

        try:
            write_grid_report(out, header, body, rows, reports, title)
        except ReportUnavailable as exc:
            say(str(exc))
