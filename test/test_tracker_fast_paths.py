"""GPU speed paths: what is selected where (CPU, here), and each path against float32 (GPU machines).

Tolerances of the GPU checks, each path against plain float32 on the same GPU, over a
video of 20 frames with two prompts (logits are low-res mask logits):
* compile, channels-last (float32): mean IoU >= 0.999 and logits within 1e-3;
* float16 / bfloat16 autocast (alone or with compile and channels-last): mean IoU >= 0.95,
  no frame below 0.8, presence score within 0.05.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from test_tracker_helpers import (
    blob_mask,
    iou,
    make_frames,
    object_results,
    one_torch_thread,  # noqa: F401  (autouse fixture)
    tiny_model,
)

from sa2va_i_ros.tracking import FastPaths, Grounding, StreamingTracker, TrackerConfig
from sa2va_i_ros.tracking.fast import resolve_fast_paths

CPU, CUDA = torch.device("cpu"), torch.device("cuda", 0)


def test_every_gpu_path_is_off_on_cpu_and_says_so():
    paths = resolve_fast_paths(compile=True, channels_last=True, device=CPU)
    assert (paths.compile, paths.channels_last) == (False, False)
    assert paths.notes == ("compile is a GPU path: off on cpu", "channels_last is a GPU path: off on cpu")
    assert resolve_fast_paths(False, False, CPU) == FastPaths()


def test_gpu_selection():
    assert resolve_fast_paths(True, True, CUDA, has_triton=True) == FastPaths(True, True, ())
    no_triton = resolve_fast_paths(True, False, CUDA, has_triton=False)
    assert not no_triton.compile and "needs triton" in no_triton.notes[0]
    assert resolve_fast_paths(False, True, CUDA, has_triton=True) == FastPaths(False, True, ())


def test_options_are_checked_at_start():
    for bad in ({"compile": "yes"}, {"channels_last": 1}):
        with pytest.raises(ValueError, match="must be true or false"):
            TrackerConfig(**bad)


def test_a_cpu_tracker_asked_for_gpu_paths_runs_the_plain_modules():
    model = copy.deepcopy(tiny_model())
    tracker = StreamingTracker(model, TrackerConfig(compile=True, channels_last=True))
    assert tracker.fast_paths.compile is False and len(tracker.fast_paths.notes) == 2
    assert tracker.runner._encoder is model.image_encoder
    assert tracker.runner._memory_attention is model.memory_attention
    conv = model.image_encoder.trunk.patch_embed.proj.weight
    assert conv.is_contiguous()  # not turned channels-last


def test_compiled_modules_are_the_ones_called(monkeypatch):
    """The compile path's wiring, traced on cpu with the "eager" backend (same kernels, so the
    same numbers): the tracker calls the compiled encoder and memory attention."""
    import torch._dynamo

    from sa2va_i_ros.tracking import fast
    from sa2va_i_ros.tracking import tracker as tracker_module

    monkeypatch.setattr(fast, "COMPILE_BACKEND", "eager")
    monkeypatch.setattr(tracker_module, "resolve_fast_paths", lambda *a: FastPaths(compile=True))
    model = copy.deepcopy(tiny_model())
    frames = make_frames(12)
    g = Grounding(frames[:4], [0, 1, 2, 3], [1, 2], [blob_mask(1), blob_mask(2)])
    torch._dynamo.reset()
    compiled = StreamingTracker(model, TrackerConfig(compile=True))
    assert compiled.runner._encoder is not model.image_encoder
    assert compiled.runner._memory_attention is not model.memory_attention
    compiled.warm_up()
    frames_seen = torch._dynamo.utils.counters["frames"]["total"]
    assert frames_seen > 0
    monkeypatch.undo()
    plain = StreamingTracker(model)
    a, b = compiled.add_object(g), plain.add_object(g)
    for t in range(4, 12):
        ra, rb = compiled.step(frames[t], t).objects[a.obj_id], plain.step(frames[t], t).objects[b.obj_id]
        assert float((ra.logits - rb.logits).abs().max()) <= 1e-5 and np.array_equal(ra.mask, rb.mask)
    torch._dynamo.reset()


def test_warm_up_leaves_the_tracker_as_it_was():
    model = tiny_model()
    frames = make_frames(16)
    g = Grounding(frames[:4], [0, 1, 2, 3], [1], [blob_mask(1)])
    plain, warmed = StreamingTracker(model), StreamingTracker(model)
    warmed.warm_up()
    assert warmed.object_ids == [] and warmed.frame_size is None
    a, b = plain.add_object(g), warmed.add_object(g)
    assert a.obj_id == b.obj_id == 1
    for t in range(4, 16):
        ra, rb = plain.step(frames[t], t).objects[1], warmed.step(frames[t], t).objects[1]
        assert torch.equal(ra.logits, rb.logits)


# -- GPU machines only (deselected here: pyproject addopts -m "not gpu") --------------------------------
def _track_cuda(config: TrackerConfig):
    model = copy.deepcopy(tiny_model()).to("cuda")
    frames = make_frames(20)
    tracker = StreamingTracker(model, config)
    tracker.warm_up()
    added = tracker.add_object(Grounding(frames[:8], list(range(8)), [1, 5], [blob_mask(1), blob_mask(5)]))
    live = [tracker.step(f, 8 + k) for k, f in enumerate(frames[8:])]
    return tracker, object_results(added.frames + live, added.obj_id)


@pytest.mark.gpu
@pytest.mark.parametrize("options", [dict(compile=True), dict(channels_last=True),
                                     dict(compile=True, channels_last=True)])
def test_cuda_float32_paths_equal_plain_float32(options):
    tracker, fast = _track_cuda(TrackerConfig(**options))
    assert all(getattr(tracker.fast_paths, k) for k in options)
    _, plain = _track_cuda(TrackerConfig())
    ious = [iou(a.mask, b.mask) for a, b in zip(fast, plain, strict=True)]
    assert np.mean(ious) >= 0.999
    assert max(float((a.logits - b.logits).abs().max()) for a, b in zip(fast, plain, strict=True)) <= 1e-3


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("options", [{}, dict(compile=True, channels_last=True)])
def test_cuda_half_precision_paths_stay_close_to_float32(dtype, options):
    _, half = _track_cuda(TrackerConfig(dtype=dtype, **options))
    _, plain = _track_cuda(TrackerConfig())
    ious = [iou(a.mask, b.mask) for a, b in zip(half, plain, strict=True)]
    assert np.mean(ious) >= 0.95 and min(ious) >= 0.8, ious
    assert max(abs(a.score - b.score) for a, b in zip(half, plain, strict=True)) <= 0.05
