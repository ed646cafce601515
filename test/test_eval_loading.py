"""``--revision`` / ``--lm-devices`` of sa2va-i-eval (and sa2va-i-video): handed to the loader as the node's
``model_revision`` and ``lm_devices`` are, checked through the real loader on the tiny checkpoint.

The hub is not reachable here, so the checkpoint is put into a Hugging Face cache of our own, in the layout
huggingface_hub reads offline (``models--owner--name/refs/<revision>`` naming a ``snapshots/<commit>``
folder), under a revision that is NOT ``main``: the run can only find it if ``--revision`` reaches the
download. A wrong revision must then fail with a clear message, and ``--lm-devices cpu`` must load the
language model's layers through the placement path (the loader's report lists each layer's device).
"""

from __future__ import annotations

import json
import shutil

import pytest
from test_eval_datasets import write_synthetic
from test_eval_tool import OracleSegmenter, run, use

from sa2va_i_ros.cli import evaluate

HUB_ID = "tester/sa2va-i-tiny"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(tiny_checkpoint, tmp_path, monkeypatch):
    """``HUB_ID`` at revision ``v1`` (and nothing at ``main``) in an offline Hugging Face cache."""
    import huggingface_hub.constants

    repo = tmp_path / "hub" / f"models--{HUB_ID.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "v1").write_text(COMMIT)
    shutil.copytree(tiny_checkpoint, repo / "snapshots" / COMMIT)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return repo


def eval_args(root, out, *extra):
    return ["--dataset", "synthetic", "--root", str(root), "--model", HUB_ID, "--out", str(out), "--limit", "1",
            "--num-frames", "2", "--no-report", *extra]


def test_revision_and_lm_devices_on_the_tiny_checkpoint(hub_cache, tiny_checkpoint, tmp_path, capsys):
    root = tmp_path / "data"
    write_synthetic(root, num_frames=3)
    out = tmp_path / "v1"
    assert evaluate.main(eval_args(root, out, "--revision", "v1", "--lm-devices", "cpu")) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["errors"] == 0 and summary["done"] == 1
    assert (summary["options"]["revision"], summary["options"]["lm_devices"]) == ("v1", "cpu")
    layers = json.loads((tiny_checkpoint / "config.json").read_text())["llm_config"]["num_hidden_layers"]
    assert summary["load"]["lm_devices"] == ["cpu"] * layers  # each layer placed by the lm_devices path

    # another revision: not in the cache, a clear error naming the model and the revision, exit status 2
    capsys.readouterr()
    assert evaluate.main(eval_args(root, tmp_path / "v2", "--revision", "v2")) == 2
    err = capsys.readouterr().err
    assert f"cannot load {HUB_ID} (revision v2): {HUB_ID}: cannot get it from the Hugging Face hub" in err
    assert "offline mode is on and it is not in the local cache" in err
    summary = json.loads((tmp_path / "v2" / "summary.json").read_text())
    assert summary["done"] == 0 and "J" not in summary


def test_a_bad_lm_devices_list_is_a_clear_error(tiny_checkpoint, tmp_path, capsys):
    root = tmp_path / "data"
    write_synthetic(root, num_frames=3)
    args = ["--dataset", "synthetic", "--root", str(root), "--model", str(tiny_checkpoint), "--limit", "1",
            "--no-report", "--out", str(tmp_path / "out"), "--lm-devices", "cpu,tpu:0"]
    assert evaluate.main(args) == 2
    assert f"cannot load {tiny_checkpoint}: bad device list 'cpu,tpu:0'" in capsys.readouterr().err


def test_the_revision_is_a_run_option_resume_checks(tmp_path, monkeypatch, capsys):
    """The revision changes the weights, so a resumed run must keep it; lm_devices only places them."""
    from test_eval_datasets import SYNTHETIC_EXPRESSIONS

    root = tmp_path / "data"
    by_key = write_synthetic(root)
    loads = use(monkeypatch, OracleSegmenter({e["exp"]: by_key[f"tabletop/{eid}"]
                                              for eid, e in SYNTHETIC_EXPRESSIONS.items()}))
    out = tmp_path / "out"
    assert run(root, out, "--limit", "1", "--revision", "v1", "--lm-devices", "cuda:0,cuda:1") == 0
    assert [load[4:] for load in loads] == [("v1", "cuda:0,cuda:1")]
    assert run(root, out, "--resume", "--revision", "v2") == 2
    assert "revision 'v1' -> 'v2'" in capsys.readouterr().err
    assert run(root, out, "--resume", "--revision", "v1") == 0
    assert [load[4:] for load in loads] == [("v1", "cuda:0,cuda:1"), ("v1", None)]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["run"]["reused"] == 1 and summary["options"]["revision"] == "v1"


def test_the_video_tool_hands_both_to_the_loader(hub_cache, tmp_path, capsys):
    """sa2va-i-video has had both options: the same checks through its own command line."""
    from sa2va_i_ros.cli import video

    root = tmp_path / "data"
    write_synthetic(root, num_frames=3)
    frames = root / "JPEGImages" / "tabletop"
    common = ["--model", HUB_ID, "--input", str(frames), "--query", "the bowl", "--num-frames", "2", "--no-overlay"]
    assert video.main([*common, "--out", str(tmp_path / "v1"), "--revision", "v1", "--lm-devices", "cpu"]) == 0
    report = json.loads((tmp_path / "v1" / "result.json").read_text())
    assert report["frames"] == 3 and "error" not in report["queries"][0]
    capsys.readouterr()
    assert video.main([*common, "--out", str(tmp_path / "v2"), "--revision", "v2"]) == 2
    assert f"sa2va-i-video: {HUB_ID}: cannot get it from the Hugging Face hub" in capsys.readouterr().err
    assert video.main([*common, "--out", str(tmp_path / "bad"), "--revision", "v1", "--lm-devices", "cpu,tpu:0"]) == 2
    assert "bad device list 'cpu,tpu:0'" in capsys.readouterr().err
