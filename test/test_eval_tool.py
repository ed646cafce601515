"""``sa2va-i-eval`` end to end with test doubles in place of the model (and once with the tiny checkpoint)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image
from test_eval_datasets import SYNTHETIC_EXPRESSIONS, write_ref_ytvos, write_synthetic

from sa2va_i_ros.core.errors import QueryError
from sa2va_i_ros.evaluation.metrics import dataset_scores, expression_scores
from sa2va_i_ros.tools import evaluate


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
    """Make the tool load ``segmenter``; returns the list of load calls."""
    loads = []

    def load(model, device="cpu", dtype="float32", original_sam2=None):
        loads.append((model, device, dtype, original_sam2))
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
    assert loads == [("double", "cpu", "float32", None)]
    assert sorted(c[1] for c in oracle.calls) == sorted(truth)
    assert {c[0] for c in oracle.calls} == {4} and {c[2:] for c in oracle.calls} == {(8, "first", "first")}
    records = read_results(out)
    assert [(r["video"], r["eid"]) for r in records] == [("tabletop", k) for k in SYNTHETIC_EXPRESSIONS]
    assert all(r["J"] == r["F"] == r["J&F"] == 1.0 for r in records)
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["J"], summary["F"], summary["J&F"]) == (1.0, 1.0, 1.0)
    assert summary["complete"] and summary["expressions"] == summary["done"] == 3 and summary["errors"] == 0
    assert summary["options"]["num_frames"] == 8 and summary["model"] == "double"
    row = "| double | 8 | first | first | 3/3 | 0 | 100.00 | 100.00 | 100.00 |"
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
    monkeypatch.setitem(sys.modules, "sa2va_i_ros.core.pipeline", None)  # import now raises ImportError
    assert run(root, tmp_path / "out") == 2
    assert "(sa2va_i_ros.core.pipeline.VideoPipeline) cannot be imported" in capsys.readouterr().err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())  # written before the model loads
    assert summary["done"] == 0 and "J" not in summary and "submission" not in summary
    assert "| 0/3 | 0 | - | - | - |" in (tmp_path / "out" / "summary.md").read_text()
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
