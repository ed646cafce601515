"""What a run's summary.json and summary.md hold, rebuilt from its records at any time."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sa2va_i_ros.offline.evaluation.datasets import Expression
from sa2va_i_ros.offline.evaluation.metrics import dataset_scores
from sa2va_i_ros.offline.evaluation.settings import EvalSettings, knobs
from sa2va_i_ros.offline.evaluation.store import write_atomic

PROTOCOL = ("per frame: DAVIS db_eval_iou and f_measure (bound_th 0.008); per expression: means over all "
            "frames of the video; dataset: means over expressions, an expression that failed counts 0; "
            "J&F = (J + F) / 2")


def summarize(expressions: Sequence[Expression], results: dict[str, dict], options: dict, timing: dict,
              run: dict | None = None) -> dict:
    records = [results[e.key] for e in expressions if e.key in results]
    seconds = [r["seconds"] for r in records if "seconds" in r]
    summary = {"dataset": options["dataset"], "split": options["split"], "model": options["model"],
               "options": options, "settings": list(knobs()), "protocol": PROTOCOL,
               "expressions": len(expressions), "done": len(records),
               "errors": sum("error" in r for r in records), "complete": len(records) == len(expressions),
               "timing": {**timing, "segment_s_mean": round(float(np.mean(seconds)), 3) if seconds else None}}
    if run is not None:
        summary["run"] = run
    if expressions[0].gt_loader is None:
        summary["submission"] = "Annotations/<video>/<eid>/<frame>.png"
    elif records:
        summary.update(dataset_scores([r.get("J", 0.0) for r in records], [r.get("F", 0.0) for r in records]))
    return summary


def headline(summary: dict) -> str:
    name = f"{summary['dataset']} {summary['split']}".strip()
    count = f"{summary['done']}/{summary['expressions']} expressions, {summary['errors']} errors"
    if "J&F" not in summary:
        return f"{name}: predictions written for {count}"
    return (f"{name}: J {100 * summary['J']:.2f}  F {100 * summary['F']:.2f}  J&F {100 * summary['J&F']:.2f} "
            f"({count})")


def write_summary(folder: Path, summary: dict) -> None:
    """summary.json and summary.md, each replaced atomically."""
    o, t = summary["options"], summary["timing"]
    if "J&F" in summary:
        scores = [f"{100 * summary[k]:.2f}" for k in ("J", "F", "J&F")]
    else:
        scores = ["server" if "submission" in summary else "-"] * 3
    settings = knobs()
    shown = EvalSettings(**{n: o[n] for n in settings if n in o})
    header = ["model", *(s.label for s in settings.values()), "expressions", "errors", "J", "F", "J&F"]
    align = ["---", *("---:" if isinstance(o.get(n), int) else "---" for n in settings), "---:", "---:",
             "---:", "---:", "---:"]
    row = [summary["model"], *(shown.shown(n) for n in settings), f"{summary['done']}/{summary['expressions']}",
           str(summary["errors"]), *scores]
    run = summary.get("run", {})
    ranks = f" over {run['ranks']} ranks" if run.get("ranks", 1) > 1 else ""
    md = [f"# sa2va-i-eval: {summary['dataset']} {summary['split']}".rstrip(), "",
          "| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |", "| " + " | ".join(row) + " |", "",
          f"{'Complete' if summary['complete'] else 'Incomplete'} run on {o['device']} ({o['dtype']}){ranks}, "
          f"data {o['root']}; model load {t.get('load_s', 0)} s, {t.get('segment_s_mean')} s per expression, "
          f"{t.get('wall_s', 0)} s in all (this invocation).", "", f"Protocol: {summary['protocol']}.", ""]
    write_atomic(folder / "summary.json", json.dumps(summary, indent=2) + "\n")
    write_atomic(folder / "summary.md", "\n".join(md))
