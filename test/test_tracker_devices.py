"""Compute dtype and device: autocast on the model's device type, nothing tied to CUDA.

On a CPU the product runs float32 only (reduced precision is refused: CPU autocast
is not what Sa2VA runs); float32 is pinned against offline sam2 by the other
tests. Reduced precision is checked against sam2's offline propagation under the
same CUDA autocast, with stated tolerances, in the ``gpu`` tests.
"""

from __future__ import annotations

import contextlib
import copy

import numpy as np
import pytest
import torch
from test_tracker_helpers import (
    H,
    W,
    assert_matches_offline,
    blob_mask,
    make_frames,
    object_results,
    offline_reference,
    one_torch_thread,  # noqa: F401  (autouse fixture)
    tiny_model,
)

from sa2va_i_ros.model.device import resolve_dtype
from sa2va_i_ros.tracking import Grounding, StreamingTracker, TrackerConfig


def _track(model, dtype, n=12):
    frames = make_frames(n)
    tracker = StreamingTracker(model, TrackerConfig(dtype=dtype))
    added = tracker.add_object(Grounding(frames[:4], list(range(4)), [0, 2], [blob_mask(0), blob_mask(2)]))
    live = [tracker.step(f, 4 + k) for k, f in enumerate(frames[4:])]
    return tracker, object_results(added.frames + live, added.obj_id)


def test_cpu_runs_float32_and_stores_bfloat16_memories():
    """What the product does on a CPU: float32 compute, memory features stored as bfloat16 (as sam2's predictor).

    Equality with sam2's offline propagation in float32 is pinned by test_tracker_offline_equivalence.
    """
    model = tiny_model()
    tracker, results = _track(model, torch.float32)
    assert len(results) == 12
    for r in results:
        assert r.mask.shape == (H, W) and r.mask.dtype == np.bool_
        assert 0.0 <= r.score <= 1.0 and np.isfinite(r.score)
        assert r.logits.dtype == torch.float32 and r.logits.shape == (1, 1, 32, 32)
    entries = tracker._objects[1].memory.recent
    stored = [e["maskmem_features"] for e in entries.values() if "maskmem_features" in e]
    assert stored and all(f.dtype == torch.bfloat16 for f in stored)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_reduced_precision_on_cpu_is_refused_with_a_clear_error(dtype):
    """The product never runs CPU autocast: the engine, the video tool and the node resolve dtypes here."""
    with pytest.raises(ValueError, match="needs a CUDA device"):
        resolve_dtype(dtype, torch.device("cpu"))
    assert resolve_dtype("float32", torch.device("cpu")) == torch.float32


# GPU checks: deselected by default (pyproject addopts -m "not gpu"), run with `pytest -m gpu` on a CUDA
# machine; CI has no GPU, so it does not claim them (they are not silently skipped either).
cuda = pytest.mark.gpu


@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_equals_offline_under_the_same_autocast(dtype):
    # Sa2VA runs its offline propagation under torch.autocast("cuda", bfloat16).
    model_gpu = copy.deepcopy(tiny_model()).to("cuda")
    frames = make_frames(20)
    prompts = [(1, blob_mask(1)), (5, blob_mask(5))]
    tracker = StreamingTracker(model_gpu, TrackerConfig(dtype=dtype))
    added = tracker.add_object(Grounding(frames[:8], list(range(8)), [i for i, _ in prompts],
                                         [m for _, m in prompts]))
    live = [tracker.step(f, 8 + k) for k, f in enumerate(frames[8:])]
    fp32 = dtype == torch.float32
    with contextlib.nullcontext() if fp32 else torch.autocast("cuda", dtype=dtype):
        ref = offline_reference(model_gpu, frames, prompts)
    results = object_results(added.frames + live, added.obj_id)
    assert all(r.logits.device.type == "cuda" for r in results)
    # same kernels in the same order; the looser bf16 bounds only allow for GPU kernel choice
    assert_matches_offline(results, ref, min_iou=0.999 if fp32 else 0.99, atol=1e-4 if fp32 else 1e-2)


@cuda
def test_cuda_float16_smoke():
    model_gpu = copy.deepcopy(tiny_model()).to("cuda")
    frames = make_frames(10)
    tracker = StreamingTracker(model_gpu, TrackerConfig(dtype="float16"))
    tracker.add_object(Grounding(frames[:3], [0, 1, 2], [0], [blob_mask(0)]))
    r = tracker.step(frames[3], 3).objects[1]
    assert r.mask.shape == (H, W) and np.isfinite(r.score)
