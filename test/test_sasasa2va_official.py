"""The SaSaSa2VA pipeline against SaSaSa2VA's official HF code's own outputs (test/fixtures/sasasa2va).

How the fixtures were produced is in test/fixtures/sasasa2va/README.md: the
official ``predict_forward`` ran on CPU float32 on the checkpoint stored there,
on the stored frames, in every mode (with and without SAM2 propagation). Token
ids must be equal, [SEG] embeddings within 1e-4, masks of IoU >= 0.999.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sa2va_i_ros.grounding.sasasa2va import pipeline as module
from sa2va_i_ros.offline.pipeline import load_video_pipeline

FIXTURES = Path(__file__).parent / "fixtures" / "sasasa2va"
CASES = json.loads((FIXTURES / "cases.json").read_text())


@pytest.fixture(scope="module")
def pipe():
    return load_video_pipeline(str(FIXTURES / "ckpt"))


@pytest.fixture(scope="module")
def official():
    return dict(np.load(FIXTURES / "official.npz"))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES["cases"], ids=[c["name"] for c in CASES["cases"]])
def test_matches_the_official_code(pipe, official, case, monkeypatch):
    name = case["name"]
    frames = list(np.load(FIXTURES / "frames.npz")["frames"][: case["num_frames"]])
    if case.get("distinct_clips"):  # the official run added the same offsets to its ten clip prompts
        offsets = case.get("offset_scale", 1.0) * torch.from_numpy(np.load(FIXTURES / "offsets.npy"))
        padded = module.clip_prompts
        monkeypatch.setattr(module, "clip_prompts", lambda seg: padded(seg) + offsets.to(seg.dtype))
    r = pipe.run(frames, CASES["query"], mode=case["mode"], q_frame=case.get("q_frame"))
    assert r.token_ids == official[f"{name}.token_ids"].tolist()
    assert r.raw_answer == str(official[f"{name}.prediction"])
    torch.testing.assert_close(r.seg_embeddings, torch.from_numpy(official[f"{name}.seg"]), rtol=0, atol=1e-4)
    shape = tuple(official[f"{name}.mask_shape"])
    expected = np.unpackbits(official[f"{name}.masks"], axis=-1, count=shape[-1]).astype(bool).reshape(shape)
    ours = np.stack(r.masks)
    assert ours.shape == expected.shape
    assert iou(ours, expected) >= 0.999
    assert 0 < expected.mean() < 1  # the comparison is not between two empty (or full) videos
    if case["num_frames"] > 100 and case["mode"] in ("q_frame", "wrap_around"):
        assert r.propagated == [100, 101, 102]
