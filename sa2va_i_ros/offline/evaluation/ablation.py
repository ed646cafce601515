"""The ablation table of a ``--grid`` run: one row per setting.

Laid out like the ablation tables of the Sa2VA-i paper as far as the material
available here describes them (docs/EVALUATION.md): the varied settings first
("MLLM frames", "sampling", "SAM2 prompt frames" as in Table 6's "12 MLLM
frames, 1 SAM2 prompt"), then the benchmark's J, F and J&F in percent, then
the J&F difference to the first row (the grid's first setting, the reference).
Settings the grid does not vary are named once under the table.
"""

from __future__ import annotations

from collections.abc import Sequence

from sa2va_i_ros.offline.evaluation.settings import EvalSettings, knobs


def rows(settings: Sequence[EvalSettings], summaries: Sequence[dict], axes: Sequence[str]) -> list[dict]:
    out = []
    for s, summary in zip(settings, summaries, strict=True):
        out.append({"setting": ", ".join(f"{a} {getattr(s, a)}" for a in axes) or "default",
                    "settings": s.as_dict(), "shown": {a: s.shown(a) for a in axes},
                    "J": summary.get("J"), "F": summary.get("F"), "J&F": summary.get("J&F"),
                    "done": summary["done"], "expressions": summary["expressions"], "errors": summary["errors"],
                    "complete": summary["complete"]})
    return out


def table(table_rows: Sequence[dict], axes: Sequence[str], dataset: str) -> tuple[list[str], list[list[str]]]:
    """(header, cells as text) of the ablation table."""
    labels = knobs()
    header = [*(labels[a].label for a in axes), f"{dataset} J", "F", "J&F", "Δ J&F", "expressions"]
    first = table_rows[0].get("J&F") if table_rows else None
    body = []
    for i, r in enumerate(table_rows):
        pct = ["-" if r[k] is None else f"{100 * r[k]:.1f}" for k in ("J", "F", "J&F")]
        if i == 0 or r["J&F"] is None or first is None:
            delta = "ref." if i == 0 and first is not None else "-"
        else:
            delta = f"{100 * (r['J&F'] - first):+.1f}"
        count = f"{r['done']}/{r['expressions']}" + (f", {r['errors']} failed" if r["errors"] else "")
        body.append([*(r["shown"][a] for a in axes), *pct, delta, count])
    return header, body


def markdown(header: Sequence[str], body: Sequence[Sequence[str]], fixed: dict, title: str) -> str:
    settings = knobs()
    numeric = {i for i in range(len(header))
               if i >= len(header) - 5 or all(row[i].isdigit() for row in body)}
    align = ["---:" if i in numeric else "---" for i in range(len(header))]
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    if fixed:
        lines += ["", "Fixed: " + ", ".join(f"{settings[k].label} {v}" for k, v in fixed.items()) + "."]
    lines += ["", "J, F, J&F in percent; Δ J&F against the first row.", ""]
    return "\n".join(lines)
