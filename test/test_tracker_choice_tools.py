"""The tracker choice in sa2va-i-video and sa2va-i-eval."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from test_eval_datasets import write_synthetic
from tracker_model_helpers import tiny_weights

from sa2va_i_ros.cli import evaluate, video

QUERY = "the cup left of the bowl"


def _folder(tmp_path, frames):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{i:05d}.png")
    return folder


def test_video_cli_with_a_sam21_tracker(tiny_checkpoint, frames, tmp_path):
    folder = _folder(tmp_path, frames)
    outputs = {}
    for name, extra in (("checkpoint", []),
                        ("sam2.1_hiera_t", ["--tracker-weights", str(tiny_weights("sam2.1_hiera_t"))])):
        out = tmp_path / name
        assert video.main(["--model", str(tiny_checkpoint), "--input", str(folder), "--query", QUERY, "--out",
                           str(out), "--no-overlay", "--tracker-model", name, *extra]) == 0
        report = json.loads((out / "result.json").read_text())
        assert report["options"]["tracker_model"] == name
        masks = sorted((out / "0_the_cup_left_of_the_bowl").glob("*.png"))
        outputs[name] = np.stack([np.asarray(Image.open(m)) for m in masks])
    assert len(outputs["checkpoint"]) == len(frames)
    # the prompt frame is the grounding's mask either way (round-tripped at each model's own
    # resolution: 256 and 128 here); propagated frames come from another model
    a, b = outputs["checkpoint"][0] > 0, outputs["sam2.1_hiera_t"][0] > 0
    assert (a & b).sum() / (a | b).sum() > 0.95
    assert not np.array_equal(outputs["checkpoint"][1:], outputs["sam2.1_hiera_t"][1:])


def test_video_cli_reports_a_bad_tracker_choice(tiny_checkpoint, frames, tmp_path, capsys):
    folder = _folder(tmp_path, frames[:2])
    base = ["--model", str(tiny_checkpoint), "--input", str(folder), "--query", QUERY, "--out", str(tmp_path / "o")]
    assert video.main([*base, "--tracker-model", "sam3"]) == 2
    assert "unknown tracker model 'sam3'" in capsys.readouterr().err
    assert video.main([*base, "--tracker-model", "sam2.1_hiera_t", "--tracker-weights", str(tmp_path / "x.pt")]) == 2
    assert "no such file" in capsys.readouterr().err


class Oracle:
    def segment(self, frames, query, *, num_frames, sampling, prompt_frames):
        return [np.zeros(f.shape[:2], bool) for f in frames]


def test_eval_passes_the_tracker_choice_and_keeps_it_with_the_results(tmp_path, monkeypatch, capsys):
    root = tmp_path / "data"
    write_synthetic(root, num_frames=2)
    calls = []

    def load(model, device="cpu", dtype="float32", original_sam2=None, *, revision, lm_devices, **settings):
        calls.append(settings)
        return Oracle()

    monkeypatch.setattr(evaluate, "load_segmenter", load)
    base = ["--dataset", "synthetic", "--root", str(root), "--model", "m", "--out", str(tmp_path / "out")]
    assert evaluate.main([*base, "--tracker-model", "sam2.1_hiera_s", "--tracker-weights", "w.pt", "--limit", "1"]) == 0
    assert calls == [{"tracker_model": "sam2.1_hiera_s", "tracker_weights": "w.pt"}]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["options"]["tracker_model"] == "sam2.1_hiera_s"
    # a resumed run must keep the tracker (it changes the numbers)
    assert evaluate.main([*base, "--resume"]) == 2
    assert "tracker_model 'sam2.1_hiera_s' -> None" in capsys.readouterr().err
    # a run from before the option existed resumes as the checkpoint tracker
    del summary["options"]["tracker_model"], summary["options"]["tracker_weights"]
    (tmp_path / "out" / "summary.json").write_text(json.dumps(summary))
    assert evaluate.main([*base, "--resume"]) == 0


def test_tiny_checkpoint_cli_writes_tiny_tracker_models(tmp_path, capsys):
    import pytest

    from sa2va_i_ros.cli import tiny_checkpoint
    from sa2va_i_ros.tracking import TrackerChoice
    from sa2va_i_ros.tracking.models import load_tracker_model

    out = tmp_path / "ckpt"
    assert tiny_checkpoint.main([str(out), "--tracker", "sam2.1_hiera_t", "--tracker", "sam2_hiera_l"]) == 0
    assert "tiny sam2.1_hiera_t tracker model" in capsys.readouterr().out
    for name in ("sam2.1_hiera_t", "sam2_hiera_l"):
        assert load_tracker_model(TrackerChoice(name, str(out / f"{name}.pt"))).image_size == 128
    with pytest.raises(SystemExit):
        tiny_checkpoint.main([str(tmp_path / "x"), "--tracker", "sam3"])
    assert "unknown tracker model(s) sam3" in capsys.readouterr().err
