"""The report beside the JSON: plots and overlay strips in ``report/index.html`` (images beside it).

Per run: the per-expression J&F histogram, J&F by video length, J&F by the
number of distinct frames the language model saw, and the overlay strips of
the best and worst expressions. Per grid: the ablation table and J&F per
setting, linking each setting's own report. matplotlib draws with the Agg
backend (no display needed); it is imported only here, so the tool still runs
(without a report) where it is missing.
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path

import numpy as np

from sa2va_i_ros.offline.evaluation.overlays import file_name


class ReportUnavailable(RuntimeError):
    """matplotlib cannot be imported."""


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ReportUnavailable(f"matplotlib cannot be imported ({exc}); no report written") from exc
    return plt


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    fig.clf()
    return path.name


def _binned(x: np.ndarray, y: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Mean of y per distinct x when there are few x values, else per equal-count bin of x."""
    values = np.unique(x)
    if len(values) <= bins:
        return values, np.array([y[x == v].mean() for v in values])
    edges = np.quantile(x, np.linspace(0, 1, bins + 1))
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)
    used = [b for b in range(bins) if (idx == b).any()]
    return np.array([x[idx == b].mean() for b in used]), np.array([y[idx == b].mean() for b in used])


def run_plots(records: list[dict], folder: Path) -> dict[str, str]:
    """The three plots of a run (PNG files in ``folder``); {} when nothing was scored."""
    scored = [r for r in records if "J&F" in r]
    if not scored:
        return {}
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    folder.mkdir(parents=True, exist_ok=True)
    jf = 100 * np.array([r["J&F"] for r in scored])
    plots = {}
    fig = plt.figure(figsize=(6, 3.6))
    ax = fig.add_subplot()
    ax.hist(jf, bins=np.linspace(0, 100, 21), color="#3b75af", edgecolor="white")
    ax.axvline(jf.mean(), color="#c44e52", linestyle="--", label=f"mean {jf.mean():.2f}")
    ax.set(xlabel="J&F per expression (%)", ylabel="expressions", title="Per-expression J&F", xlim=(0, 100))
    ax.legend()
    plots["histogram"] = _save(fig, folder / "jf_histogram.png")
    for name, field, label in (("length", "frames", "video length (frames)"),
                               ("seen", "seen", "distinct frames the language model saw")):
        pairs = [(r[field], v) for r, v in zip(scored, jf, strict=True) if isinstance(r.get(field), (int, float))]
        if not pairs:
            continue
        x, y = (np.array(v, float) for v in zip(*pairs, strict=True))
        fig = plt.figure(figsize=(6, 3.6))
        ax = fig.add_subplot()
        ax.scatter(x, y, s=12, alpha=0.5, color="#3b75af", label="expressions")
        bx, by = _binned(x, y)
        ax.plot(bx, by, "o-", color="#c44e52", label="mean")
        ax.set(xlabel=label, ylabel="J&F (%)", title=f"J&F by {label.split(' (')[0]}", ylim=(-2, 102))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
        plots[name] = _save(fig, folder / f"jf_by_{name}.png")
    plt.close("all")
    return plots


def grid_plot(rows: list[dict], folder: Path) -> str | None:
    """J&F per grid setting as bars (None when no setting was scored)."""
    scored = [r for r in rows if r.get("J&F") is not None]
    if not scored:
        return None
    plt = _pyplot()
    folder.mkdir(parents=True, exist_ok=True)
    fig = plt.figure(figsize=(max(5, 0.9 * len(scored) + 2), 3.8))
    ax = fig.add_subplot()
    labels = [r["setting"] for r in scored]
    ax.bar(range(len(scored)), [100 * r["J&F"] for r in scored], color="#3b75af")
    ax.set_xticks(range(len(scored)), labels, rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="J&F (%)", title="J&F per setting", ylim=(0, 100))
    name = _save(fig, folder / "jf_per_setting.png")
    plt.close("all")
    return name


_CSS = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px}"
        "td.n{text-align:right}img{max-width:100%}figure{margin:1em 0}figcaption{font-size:90%;color:#444}")


def _page(title: str, body: list[str]) -> str:
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n<h1>{html.escape(title)}</h1>\n" + "\n".join(body)
            + "\n</body></html>\n")


def _table(header: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    lines = [f"<table><tr>{head}</tr>"]
    for row in rows:
        cells = "".join(f"<td{' class=n' if i in numeric else ''}>{html.escape(c)}</td>" for i, c in enumerate(row))
        lines.append(f"<tr>{cells}</tr>")
    return "\n".join(lines) + "</table>"


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def write_run_report(folder: Path, summary: dict, records: list[dict], best: list[dict], worst: list[dict],
                     overlay_dir: Path) -> Path:
    """``folder/report/index.html`` with its PNGs beside it; returns the HTML path."""
    report = folder / "report"
    if report.exists():
        shutil.rmtree(report)
    report.mkdir(parents=True)
    plots = run_plots(records, report)
    o = summary["options"]
    name = f"{summary['dataset']} {summary['split']}".strip()
    body = [f"<p>{html.escape(summary['model'])} on {html.escape(name)}: "
            f"{summary['done']}/{summary['expressions']} expressions, "
            f"{summary['errors']} errors{'' if summary['complete'] else ' (incomplete run)'}.</p>"]
    settings = [f"{k} {o[k]}" for k in summary.get("settings", [])]
    if settings:
        body.append(f"<p>Settings: {html.escape(', '.join(settings))}.</p>")
    body.append(_table(["J", "F", "J&F"], [[_pct(summary.get(k)) for k in ("J", "F", "J&F")]], {0, 1, 2}))
    captions = {"histogram": "Per-expression J&F.", "length": "J&F by video length: dots are expressions, "
                "the line the mean per length (or per bin of lengths).",
                "seen": "J&F by the number of distinct frames the language model saw (fewer than the setting on "
                "videos shorter than it)."}
    for plot, file in plots.items():
        body.append(f"<figure><img src=\"{file}\" alt=\"{plot}\"><figcaption>{html.escape(captions[plot])}"
                    "</figcaption></figure>")
    for title, chosen in (("Best expressions", best), ("Worst expressions", worst)):
        if not chosen:
            continue
        body.append(f"<h2>{title}</h2><p>Prediction tinted blue, ground-truth outline yellow; frames spread "
                    "over the video.</p>")
        for r in chosen:
            key = f"{r['video']}/{r['eid']}"
            src = f"overlays/{file_name(key)}"
            (report / "overlays").mkdir(exist_ok=True)
            shutil.copyfile(overlay_dir / file_name(key), report / src)
            cap = (f"{key} &ldquo;{html.escape(r['exp'])}&rdquo;: J {_pct(r['J'])}, F {_pct(r['F'])}, "
                   f"J&amp;F {_pct(r['J&F'])}, {r['frames']} frames")
            body.append(f"<figure><img src=\"{src}\" alt=\"{html.escape(key)}\"><figcaption>{cap}</figcaption>"
                        "</figure>")
    if "J&F" not in summary:
        body.append("<p>This split has no public ground truth: no scores, plots or overlays.</p>")
    path = report / "index.html"
    path.write_text(_page(f"sa2va-i-eval: {name}", body), encoding="utf-8")
    return path


def write_grid_report(out: Path, header: list[str], table: list[list[str]], rows: list[dict],
                      cell_reports: list[Path | None], title: str) -> Path:
    """``out/report/index.html``: the ablation table, J&F per setting, links to each setting's report."""
    report = out / "report"
    if report.exists():
        shutil.rmtree(report)
    report.mkdir(parents=True)
    body = [_table(header, table, set(range(len(header))) - {0})]
    plot = grid_plot(rows, report)
    if plot:
        body.append(f"<figure><img src=\"{plot}\" alt=\"J&amp;F per setting\"><figcaption>J&amp;F per setting."
                    "</figcaption></figure>")
    links = [f"<li><a href=\"../{p.relative_to(out).as_posix()}\">{html.escape(r['setting'])}</a></li>"
             for r, p in zip(rows, cell_reports, strict=True) if p is not None]
    if links:
        body.append("<h2>Each setting</h2><ul>" + "".join(links) + "</ul>")
    path = report / "index.html"
    path.write_text(_page(title, body), encoding="utf-8")
    return path
