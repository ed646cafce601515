"""SaSaSa2VA through the tools: ``sa2va-i-eval --mode`` for every mode, ``sa2va-i-video --mode``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_eval_datasets import write_synthetic
from test_eval_tool import read_results

from sa2va_i_ros.cli import evaluate, video
from sa2va_i_ros.grounding.sasasa2va.modes import MODES
from sa2va_i_ros.testing.tiny_sasasa2va import write_tiny_sasasa2va

FIXTURE_CKPT = str(Path(__file__).parent / "fixtures" / "sasasa2va" / "ckpt")  # a tiny one (see its README)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic(root, num_frames=3)
    selected = {"tabletop": {"selected_frames": {"0": [0] * 30 + [1] * 40 + [2] * 30}}}
    (root / "selected_frames.json").write_text(json.dumps(selected))
    return root


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_eval_runs_every_mode_on_the_synthetic_dataset(data, tmp_path, mode):
    out = tmp_path / "out"
    extra = ["--q-frame-file", str(data / "selected_frames.json")] if mode == "q_frame" else []
    code = evaluate.main(["--dataset", "synthetic", "--root", str(data), "--model", FIXTURE_CKPT,
                          "--mode", mode, *extra, "--out", str(out), "--limit", "1"])
    assert code == 0
    (record,) = read_results(out)
    assert record["frames"] == 3 and 0.0 <= record["J&F"] <= 1.0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["options"]["mode"] == mode
    assert f"| SaSaSa2VA {mode} |" in (out / "summary.md").read_text()


def test_eval_mode_usage_errors(data, tmp_path, tiny_checkpoint, capsys):
    base = ["--dataset", "synthetic", "--root", str(data), "--limit", "1"]
    assert evaluate.main([*base, "--model", FIXTURE_CKPT, "--mode", "q_frame", "--out", str(tmp_path / "a")]) == 2
    assert "go together" in capsys.readouterr().err
    assert evaluate.main([*base, "--model", str(tiny_checkpoint), "--mode", "uniform",
                          "--out", str(tmp_path / "b")]) == 2
    assert "--mode is for SaSaSa2VA checkpoints" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.parse_args([*base, "--model", FIXTURE_CKPT, "--mode", "selective_averaging"])


def test_video_tool_runs_a_sasasa2va_checkpoint(data, tmp_path):
    out = tmp_path / "out"
    code = video.main(["--model", FIXTURE_CKPT, "--input", str(data / "JPEGImages" / "tabletop"),
                       "--query", "the cup", "--mode", "wrap_around", "--out", str(out), "--no-overlay"])
    assert code == 0
    (entry,) = json.loads((out / "result.json").read_text())["queries"]
    assert entry["mode"] == "wrap_around" and entry["seg_tokens"] == 1
    assert entry["sampled_indices"] == sorted(i % 3 for i in range(100))
    assert len(list((out / "0_the_cup").glob("*.png"))) == 3


def test_tiny_sasasa2va_writer_matches_the_stored_fixture_layout(tmp_path):
    """The writer keeps producing the layout the fixtures were made with (names, shapes, config fields)."""
    from safetensors import safe_open

    def layout(ckpt: Path) -> tuple[dict, dict]:
        config = json.loads((ckpt / "config.json").read_text())
        shapes = {}
        for name, fname in json.loads((ckpt / "model.safetensors.index.json").read_text())["weight_map"].items():
            with safe_open(str(ckpt / fname), framework="pt") as f:
                shapes[name] = tuple(f.get_slice(name).get_shape())
        return config, shapes

    fresh_config, fresh = layout(write_tiny_sasasa2va(tmp_path / "ckpt"))
    stored_config, stored = layout(Path(FIXTURE_CKPT))
    assert fresh == stored and not any("_modified" in n for n in stored)
    for config in (fresh_config, stored_config):
        assert config["model_type"] == "sasasa2va_chat" and config["samurai_mode"] is False
        assert config["template"] == "phi3_chat" and config["architectures"] == ["SaSaSa2VAChatModel"]


@pytest.mark.slow
def test_a_26b_layout_sasasa2va_checkpoint_loads_and_runs(tmp_path):
    """SaSaSa2VA-26B's layout (InternLM2 language model, InternViT-6B-style vision, internlm2_chat) through
    the normal loader and the pipeline; the tiny InternLM2 checkpoint is the loader's, converted."""
    from sa2va_i_ros.offline.pipeline import load_video_pipeline
    from sa2va_i_ros.testing.tiny_internlm2 import write_tiny_internlm2_checkpoint
    from sa2va_i_ros.testing.tiny_sasasa2va import to_sasasa2va

    ckpt = to_sasasa2va(write_tiny_internlm2_checkpoint(tmp_path / "ckpt", vision="6b"), "internlm2_chat")
    pipe = load_video_pipeline(str(ckpt))
    assert pipe.engine.cfg.kind == "sasasa2va" and pipe.engine.cfg.llm_arch == "InternLM2ForCausalLM"
    assert pipe.engine.cfg.vision.get("qk_normalization") is True
    import numpy as np

    frames = [np.full((24, 32, 3), 40 * k, np.uint8) for k in range(5)]
    r = pipe.run(frames, "the cup", mode="uniform_plus")
    assert r.answer == "Sure, [SEG]." and r.num_seg == 1 and len(r.masks) == 5
