"""``sa2va-i-eval`` end to end with test doubles in place of the model (and once with the tiny checkpoint)."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from test_eval_datasets import SYNTHETIC_EXPRESSIONS, write_ref_ytvos, write_synthetic

from sa2va_i_ros.cli import evaluate
from sa2va_i_ros.errors import QueryError
from sa2va_i_ros.offline.evaluation.metrics import dataset_scores, expression_scores
from sa2va_i_ros.testing.synthetic.benchmark import write_benchmark


class OracleSegmenter:
    """Test double: answers each query with the ground truth of the expression with that text."""

    def __init__(self, truth: dict[str, list[np.ndarray]], fail_on: str = ""):
        self.truth, self.fail_on, self.calls = truth, fail_on, []

    def masks_for(self, query: str) -> list[np.ndarray]:
        return [m.copy() for m in self.truth[query]]

    def segment(self, frames, query, *, num_frames, sampling, prompt_frames):
        self.calls.append((len(frames), query, num_frames, sampling, prompt_frames))
        if query == self.fail_on:
            raise QueryError(f"cannot ground {query!r}")
        return self.masks_for(query)


class ShiftedSegmenter(OracleSegmenter):
    """Test double: the ground truth moved 3 pixels right."""

    def masks_for(self, query: str) -> list[np.ndarray]:
        return [np.roll(m, 3, axis=1) for m in self.truth[query]]


@pytest.fixture
def synthetic(tmp_path):
    root = tmp_path / "data"
    by_key = write_synthetic(root)
    truth = {e["exp"]: by_key[f"tabletop/{eid}"] for eid, e in SYNTHETIC_EXPRESSIONS.items()}
    return root, truth


def use(monkeypatch, segmenter) -> list[tuple]:
    """Make the tool load ``segmenter``; returns the list of load calls (revision and lm_devices: keywords the
    tool always passes, as the node does)."""
    loads = []

    def load(model, device="cpu", dtype="float32", original_sam2=None, *, revision, lm_devices):
        loads.append((model, device, dtype, original_sam2, revision, lm_devices))
        return segmenter

    monkeypatch.setattr(evaluate, "load_segmenter", load)
    return loads


def run(root, out, *extra: str, dataset: str = "synthetic") -> int:
    return evaluate.main(["--dataset", dataset, "--root", str(root), "--model", "double", "--out", str(out),
                          *extra])


def read_results(out) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_oracle_scores_one(synthetic, tmp_path, monkeypatch):
    root, truth = synthetic
    oracle = OracleSegmenter(truth)
    loads = use(monkeypatch, oracle)
    out = tmp_path / "out"
    assert run(root, out, "--num-frames", "8", "--sampling", "first", "--prompt-frames", "first") == 0
    assert loads == [("double", "cpu", "float32", None, None, None)]
    assert sorted(c[1] for c in oracle.calls) == sorted(truth)
    assert {c[0] for c in oracle.calls} == {4} and {c[2:] for c in oracle.calls} == {(8, "first", "first")}
    records = read_results(out)
    assert [(r["video"], r["eid"]) for r in records] == [("tabletop", k) for k in SYNTHETIC_EXPRESSIONS]
    assert all(r["J"] == r["F"] == r["J&F"] == 1.0 for r in records)
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["J"], summary["F"], summary["J&F"]) == (1.0, 1.0, 1.0)
    assert summary["complete"] and summary["expressions"] == summary["done"] == 3 and summary["errors"] == 0
    assert summary["options"]["num_frames"] == 8 and summary["model"] == "double"
    row = "| double | 8 | first | first (1) | - | checkpoint | - | torch | - | 3/3 | 0 | 100.00 | 100.00 | 100.00 |"
    assert row in (out / "summary.md").read_text()


def test_shifted_prediction_is_scored_by_the_metric(synthetic, tmp_path, monkeypatch):
    root, truth = synthetic
    shifted = ShiftedSegmenter(truth)
    use(monkeypatch, shifted)
    out = tmp_path / "out"
    assert run(root, out) == 0
    per_expression = [expression_scores(truth[e["exp"]], shifted.masks_for(e["exp"]))
                      for e in SYNTHETIC_EXPRESSIONS.values()]
    expected = dataset_scores([j for j, _ in per_expression], [f for _, f in per_expression])
    summary = json.loads((out / "summary.json").read_text())
    assert expected["J&F"] < 0.9
    for k in ("J", "F", "J&F"):
        assert summary[k] == pytest.approx(expected[k], abs=1e-12)


def test_limit_then_resume_skips_finished_expressions(synthetic, tmp_path, monkeypatch):
    root, truth = synthetic
    out = tmp_path / "out"
    first = OracleSegmenter(truth)
    use(monkeypatch, first)
    assert run(root, out, "--limit", "2") == 0
    assert len(first.calls) == 2 and len(read_results(out)) == 2
    assert json.loads((out / "summary.json").read_text())["expressions"] == 2

    second = OracleSegmenter(truth)
    use(monkeypatch, second)
    assert run(root, out, "--resume") == 0
    assert [c[1] for c in second.calls] == [SYNTHETIC_EXPRESSIONS["2"]["exp"]]
    assert len(read_results(out)) == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["done"] == 3 and summary["complete"] and summary["J&F"] == 1.0

    loads = use(monkeypatch, OracleSegmenter(truth))
    assert run(root, out, "--resume") == 0
    assert loads == []  # nothing left to do: the model is not even loaded


def test_resume_merges_what_killed_ranks_left_in_their_parts(synthetic, tmp_path, monkeypatch):
    """Ranks of an earlier run (of any size) killed before rank 0 merged: their part files are results too."""
    root, truth = synthetic
    use(monkeypatch, OracleSegmenter(truth))
    out = tmp_path / "out"
    assert run(root, out) == 0
    lines = (out / "results.jsonl").read_text().splitlines()
    (out / "parts").mkdir(exist_ok=True)
    (out / "parts" / "rank-3.jsonl").write_text(lines[2] + "\n" + lines[0][:15])  # cut short by the kill
    (out / "parts" / "rank-0.jsonl").write_text(lines[0] + "\n")
    (out / "results.jsonl").write_text("")
    again = OracleSegmenter(truth)
    use(monkeypatch, again)
    assert run(root, out, "--resume") == 0
    assert [c[1] for c in again.calls] == [SYNTHETIC_EXPRESSIONS["1"]["exp"]]
    assert [r["eid"] for r in read_results(out)] == ["0", "1", "2"]
    assert json.loads((out / "summary.json").read_text())["run"] == {
        "ranks": 1, "evaluated": 1, "reused": 2, "scored_twice": 0}
    assert not list((out / "parts").glob("rank-*.jsonl"))


def test_existing_output_needs_resume_and_the_same_options(synthetic, tmp_path, monkeypatch, capsys):
    root, truth = synthetic
    use(monkeypatch, OracleSegmenter(truth))
    out = tmp_path / "out"
    assert run(root, out, "--limit", "1") == 0
    assert run(root, out) == 2
    assert "--resume" in capsys.readouterr().err
    assert run(root, out, "--resume", "--num-frames", "8") == 2
    assert "num_frames 5 -> 8" in capsys.readouterr().err
    assert len(read_results(out)) == 1


def test_a_line_cut_short_is_evaluated_again(synthetic, tmp_path, monkeypatch, capsys):
    root, truth = synthetic
    use(monkeypatch, OracleSegmenter(truth))
    out = tmp_path / "out"
    assert run(root, out) == 0
    lines = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:20])
    again = OracleSegmenter(truth)
    use(monkeypatch, again)
    assert run(root, out, "--resume") == 0
    assert "dropped 1 unreadable line" in capsys.readouterr().err
    assert len(again.calls) == 1
    assert [r["eid"] for r in read_results(out)] == ["0", "1", "2"]


def test_a_failed_expression_counts_zero_and_is_retried(synthetic, tmp_path, monkeypatch):
    root, truth = synthetic
    out = tmp_path / "out"
    use(monkeypatch, OracleSegmenter(truth, fail_on="the bowl"))
    assert run(root, out) == 1
    records = {r["eid"]: r for r in read_results(out)}
    assert "cannot ground" in records["1"]["error"] and "J" not in records["1"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["errors"] == 1 and summary["J"] == pytest.approx(2 / 3, abs=1e-12)

    retry = OracleSegmenter(truth)
    use(monkeypatch, retry)
    assert run(root, out, "--resume") == 0
    assert [c[1] for c in retry.calls] == ["the bowl"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["errors"] == 0 and summary["J&F"] == 1.0


def test_wrong_masks_from_the_model_are_an_error(synthetic, tmp_path, monkeypatch):
    root, truth = synthetic
    short = {text: masks[:-1] for text, masks in truth.items()}
    use(monkeypatch, OracleSegmenter(short))
    out = tmp_path / "out"
    assert run(root, out) == 1
    assert all("3 masks for 4 frames" in r["error"] for r in read_results(out))
    assert json.loads((out / "summary.json").read_text())["J&F"] == 0.0


def test_ground_truth_of_another_size_stops_the_run(synthetic, tmp_path, monkeypatch, capsys):
    root, truth = synthetic
    use(monkeypatch, OracleSegmenter(truth))
    small = Image.fromarray(np.zeros((10, 10), np.uint8), mode="P")
    small.save(root / "Annotations" / "tabletop" / "00001.png")
    assert run(root, tmp_path / "out") == 2
    assert "tabletop/0: ground truth of size [(10, 10), (24, 32)], frames (24, 32)" in capsys.readouterr().err


def test_split_without_ground_truth_writes_the_submission(tmp_path, monkeypatch):
    root = tmp_path / "ytvos"
    write_ref_ytvos(root)
    masks = [np.zeros((24, 32), bool) for _ in range(3)]
    masks[1][2:5, 3:9] = True
    use(monkeypatch, OracleSegmenter({"a duck 0a1b": masks}))
    out = tmp_path / "out"
    assert run(root, out, dataset="ref-youtube-vos") == 0
    pngs = sorted((out / "Annotations" / "0a1b" / "0").iterdir())
    assert [p.name for p in pngs] == ["00000.png", "00001.png", "00002.png"]
    img = Image.open(pngs[1])
    assert img.mode == "L" and np.array_equal(np.asarray(img), masks[1].astype(np.uint8) * 255)
    summary = json.loads((out / "summary.json").read_text())
    assert "J" not in summary and summary["done"] == 1 and summary["split"] == "valid"
    assert read_results(out)[0]["masks"] == "Annotations/0a1b/0"


def test_missing_pipeline_and_missing_data_are_clear_errors(synthetic, tmp_path, monkeypatch, capsys):
    root, _ = synthetic
    monkeypatch.setitem(sys.modules, "sa2va_i_ros.offline.pipeline", None)  # import now raises ImportError
    assert run(root, tmp_path / "out") == 2
    assert "(sa2va_i_ros.offline.pipeline.VideoPipeline) cannot be imported" in capsys.readouterr().err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())  # written before the model loads
    assert summary["done"] == 0 and "J" not in summary and "submission" not in summary
    assert "| - | 0/3 | 0 | - | - | - |" in (tmp_path / "out" / "summary.md").read_text()
    assert run(tmp_path / "absent", tmp_path / "out2") == 2
    assert "absent is missing" in capsys.readouterr().err


def test_tiny_checkpoint_through_the_real_pipeline(tmp_path, tiny_checkpoint):
    """The integration point: the product loader and VideoPipeline.segment on the tiny checkpoint.
    Its random weights make the scores meaningless; the run must complete with one score per expression."""
    root = tmp_path / "data"
    write_synthetic(root, num_frames=3)
    out = tmp_path / "out"
    code = evaluate.main(["--dataset", "synthetic", "--root", str(root), "--model", str(tiny_checkpoint),
                          "--out", str(out), "--num-frames", "2", "--limit", "1"])
    assert code == 0
    (record,) = read_results(out)
    assert 0.0 <= record["J"] <= 1.0 and 0.0 <= record["F"] <= 1.0 and record["frames"] == 3


# -- grids, reports ---------------------------------------------------------------------------------
class SettingsSegmenter(OracleSegmenter):
    """Test double whose quality depends on the settings: exact with 8 frames, shifted 3 px with fewer,
    and one more pixel off when SAM2 is prompted on the first frame only."""

    def segment(self, frames, query, *, num_frames, sampling, prompt_frames):
        self.calls.append((len(frames), query, num_frames, sampling, prompt_frames))
        return shifted_truth(self.truth[query], num_frames, prompt_frames)


def shifted_truth(masks, num_frames, prompt_frames):
    shift = (0 if num_frames >= 8 else 3) + (1 if prompt_frames == "first" else 0)
    return [np.roll(m, shift, axis=1) for m in masks]


def check_report(html_path):
    """Every image the page shows exists and opens as a PNG; returns their names."""
    import re

    text = html_path.read_text()
    sources = re.findall(r'<img src="([^"]+)"', text)
    for src in sources:
        with Image.open(html_path.parent / src) as img:
            assert img.format == "PNG" and img.size[0] > 10, src
            img.verify()
    return sources


def test_grid_runs_every_setting_with_one_model_and_prints_the_table(synthetic, tmp_path, monkeypatch, capsys):
    root, truth = synthetic
    double = SettingsSegmenter(truth)
    loads = use(monkeypatch, double)
    out = tmp_path / "grid"
    code = run(root, out, "--grid", "num_frames=5,8", "prompt_frames=all,first", "--sampling", "first")
    assert code == 0
    assert len(loads) == 1  # every setting reuses the one loaded model
    assert len(double.calls) == 4 * 3 and {c[3] for c in double.calls} == {"first"}
    printed = capsys.readouterr().out
    lines = (out / "ablation.md").read_text().splitlines()
    assert "| MLLM frames | SAM2 prompt frames | synthetic J | F | J&F | Δ J&F | expressions |" in lines
    for frames, prompts in itertools.product((5, 8), ("all", "first")):
        per = [expression_scores(truth[e["exp"]], shifted_truth(truth[e["exp"]], frames, prompts))
               for e in SYNTHETIC_EXPRESSIONS.values()]
        expected = dataset_scores([j for j, _ in per], [f for _, f in per])
        folder = out / f"num_frames={frames},prompt_frames={prompts}"
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["J&F"] == pytest.approx(expected["J&F"], abs=1e-12)
        assert summary["options"]["sampling"] == "first" and summary["complete"]
        shown = f"all ({frames})" if prompts == "all" else "first (1)"
        row = next(line for line in lines if line.startswith(f"| {frames} | {shown} |"))
        assert f"| {100 * expected['J']:.1f} | {100 * expected['F']:.1f} | {100 * expected['J&F']:.1f} |" in row
        assert row in printed
    first = json.loads((out / "num_frames=5,prompt_frames=all" / "summary.json").read_text())["J&F"]
    best = json.loads((out / "num_frames=8,prompt_frames=all" / "summary.json").read_text())["J&F"]
    assert best == 1.0 > first
    assert f"| {100 * (best - first):+.1f} |" in next(line for line in lines if line.startswith("| 8 | all (8) |"))
    assert ("Fixed: sampling first, SaSaSa2VA mode -, tracker checkpoint, tracker weights -, tracker backend torch, "
            "tracker ONNX graphs -.") in lines
    rows = json.loads((out / "ablation.json").read_text())["rows"]
    assert [r["settings"]["num_frames"] for r in rows] == [5, 5, 8, 8]
    # the grid's report shows the per-setting plot and links every setting's own report
    grid_html = out / "report" / "index.html"
    assert check_report(grid_html) == ["jf_per_setting.png"]
    for link in re.findall(r'<a href="([^"]+)"', grid_html.read_text()):
        assert (grid_html.parent / link).is_file()
    assert len(re.findall(r'<a href="([^"]+)"', grid_html.read_text())) == 4


def test_grid_resume_runs_only_what_is_missing(synthetic, tmp_path, monkeypatch):
    root, truth = synthetic
    use(monkeypatch, SettingsSegmenter(truth))
    out = tmp_path / "grid"
    assert run(root, out, "--grid", "num_frames=5,8", "--limit", "2") == 0
    again = SettingsSegmenter(truth)
    use(monkeypatch, again)
    assert run(root, out, "--grid", "num_frames=5,8", "--resume") == 0
    last = SYNTHETIC_EXPRESSIONS["2"]["exp"]
    assert sorted((c[2], c[1]) for c in again.calls) == [(5, last), (8, last)]
    assert json.loads((out / "num_frames=8" / "summary.json").read_text())["run"] == {
        "ranks": 1, "evaluated": 1, "reused": 2, "scored_twice": 0}


def test_grid_errors(synthetic, tmp_path, monkeypatch, capsys):
    root, truth = synthetic
    use(monkeypatch, OracleSegmenter(truth))
    assert run(root, tmp_path / "g", "--grid", "frames=5,8") == 2
    assert "unknown setting 'frames'; settings: num_frames, sampling, prompt_frames, mode" in capsys.readouterr().err


def test_report_plots_and_best_and_worst_overlays(synthetic, tmp_path, monkeypatch):
    root, truth = synthetic
    use(monkeypatch, ShiftedSegmenter(truth))
    out = tmp_path / "out"
    assert run(root, out, "--report-examples", "1") == 0
    html_path = out / "report" / "index.html"
    sources = check_report(html_path)
    assert sources[:3] == ["jf_histogram.png", "jf_by_length.png", "jf_by_seen.png"]
    records = read_results(out)
    best = min(records, key=lambda r: (-r["J&F"], r["eid"]))
    worst = min(records, key=lambda r: (r["J&F"], r["eid"]))  # a tie (eids 0 and 2 here) goes to the first key
    assert best["J&F"] > worst["J&F"]
    assert sources[3:] == [f"overlays/tabletop__{best['eid']}.png", f"overlays/tabletop__{worst['eid']}.png"]
    assert sorted(p.name for p in (out / "overlays").iterdir()) == sorted(
        {f"tabletop__{best['eid']}.png", f"tabletop__{worst['eid']}.png"})
    # the strip shows the prediction: blue tint where the shifted mask is, none elsewhere
    strip = np.asarray(Image.open(out / "overlays" / f"tabletop__{best['eid']}.png").convert("RGB"))
    bluish = strip[..., 2].astype(int) - strip[..., 0] > 60  # the frames are grey, the gaps white
    assert strip.shape[0] == 160 and bluish.mean() > 0.01
    assert all(r["seen"] == 4 for r in records)  # 4 frames, 5 asked: linspace keeps the 4 distinct ones


def test_no_report_and_split_without_ground_truth(tmp_path, monkeypatch):
    root = tmp_path / "ytvos"
    write_ref_ytvos(root)
    masks = [np.zeros((24, 32), bool) for _ in range(3)]
    use(monkeypatch, OracleSegmenter({"a duck 0a1b": masks}))
    assert run(root, tmp_path / "a", dataset="ref-youtube-vos") == 0
    html_path = tmp_path / "a" / "report" / "index.html"
    assert check_report(html_path) == [] and "no public ground truth" in html_path.read_text()
    assert run(root, tmp_path / "b", "--no-report", dataset="ref-youtube-vos") == 0
    assert not (tmp_path / "b" / "report").exists()


@pytest.mark.slow
def test_grid_and_report_on_the_synthetic_benchmark_with_the_tiny_checkpoint(tmp_path, tiny_checkpoint):
    """The smoke run of the whole tool, as a user starts it: a grid over the real pipeline on the synthetic
    benchmark writes the ablation table, one folder per setting and the reports with their plots and overlays.
    (One torch thread: on a machine shared by many processes, two spinning threads per process are slower.)"""
    root = tmp_path / "data"
    write_benchmark(root, (3, 5), size=(48, 32))
    out = tmp_path / "grid"
    done = subprocess.run([sys.executable, "-m", "sa2va_i_ros.cli.evaluate", "--dataset", "synthetic",
                           "--root", str(root), "--model", str(tiny_checkpoint), "--out", str(out),
                           "--grid", "num_frames=1,3", "--report-examples", "2"],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    table = (out / "ablation.md").read_text()
    for frames in (1, 3):
        s = json.loads((out / f"num_frames={frames}" / "summary.json").read_text())
        assert s["complete"] and s["done"] == 10 and s["errors"] == 0
        row = f"| {frames} | {100 * s['J']:.1f} | {100 * s['F']:.1f} | {100 * s['J&F']:.1f} |"
        assert row in table and row in done.stdout
        records = read_results(out / f"num_frames={frames}")
        assert sorted({r["frames"] for r in records}) == [3, 5]
        assert {r["seen"] for r in records} == {frames}
        cell_html = out / f"num_frames={frames}" / "report" / "index.html"
        sources = check_report(cell_html)
        assert sources[:3] == ["jf_histogram.png", "jf_by_length.png", "jf_by_seen.png"]
        assert len(sources) == 3 + 4 and all(s.startswith("overlays/") for s in sources[3:])
    assert check_report(out / "report" / "index.html") == ["jf_per_setting.png"]
