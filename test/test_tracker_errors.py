"""Bad input raises a clear ValueError before any state changes; other objects are unaffected."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_tracker_helpers import (
    H,
    W,
    blob_mask,
    make_frames,
    one_torch_thread,  # noqa: F401  (autouse fixture)
    tiny_model,
)

from sa2va_i_ros.model.preprocess import sam2_pixels
from sa2va_i_ros.tracking import Grounding, StreamingTracker, TrackerConfig

FRAMES = make_frames(6)


def _g(**kw):
    base = dict(frames=FRAMES, stamps=list(range(6)), sampled_indices=[1, 3], masks=[blob_mask(1), blob_mask(3)])
    base.update(kw)
    return Grounding(**base)


BAD_GROUNDINGS = {
    "no prompts": (_g(sampled_indices=[], masks=[]), "no prompts"),
    "no frames": (_g(frames=[], stamps=[]), "no frames"),
    "mask count": (_g(masks=[blob_mask(1)]), "2 sampled indices but 1 masks"),
    "mask size": (_g(masks=[blob_mask(1), np.zeros((H, W + 1), bool)]), r"mask 1 has shape \(48, 65\)"),
    "mask dtype": (_g(masks=[blob_mask(1), blob_mask(3).astype(np.uint8)]), "mask 1 must be a bool array"),
    "index range": (_g(sampled_indices=[1, 6]), "sampled index 6"),
    "negative index": (_g(sampled_indices=[-1, 3]), "sampled index -1"),
    "stamps": (_g(stamps=[0, 1]), "6 frames but 2 stamps"),
    "frame sizes": (_g(frames=[*FRAMES[:5], np.zeros((H, W - 2, 3), np.uint8)]), "differ in size"),
    "frame dtype": (_g(frames=[f.astype(np.float32) for f in FRAMES]), "uint8"),
    "pixels shape": (_g(pixels=[torch.zeros(3, 64, 64), None]), r"pixels must be \(3, 128, 128\)"),
    "pixels count": (_g(pixels=[None]), "pixels has 1 entries"),
    "raw features": (_g(raw_features=[{"backbone_fpn": []}, None]), "raw_features must be"),
}


def _tracker_with_one_object(model):
    tracker = StreamingTracker(model, TrackerConfig(max_prompt_frames=3))
    tracker.add_object(_g())
    return tracker


@pytest.mark.parametrize("name", sorted(BAD_GROUNDINGS))
def test_bad_grounding_is_rejected(name):
    grounding, message = BAD_GROUNDINGS[name]
    tracker = StreamingTracker(tiny_model())
    with pytest.raises(ValueError, match=message):
        tracker.add_object(grounding)
    assert tracker.object_ids == []


def test_errors_never_touch_the_tracked_objects():
    model = tiny_model()
    live = make_frames(12, seed=3)
    clean = _tracker_with_one_object(model)
    messy = _tracker_with_one_object(model)

    def assault():
        for grounding, message in BAD_GROUNDINGS.values():
            with pytest.raises(ValueError, match=message):
                messy.add_object(grounding)
        with pytest.raises(ValueError, match="exceed max_prompt_frames=3"):
            messy.add_object(_g(sampled_indices=[0, 1, 2, 3], masks=[blob_mask(i) for i in range(4)]))
        with pytest.raises(ValueError, match="frame is"):
            messy.step(np.zeros((H + 2, W, 3), np.uint8), "bad")
        with pytest.raises(ValueError, match="uint8"):
            messy.step(live[0].astype(np.int16), "bad")
        with pytest.raises(ValueError, match="grounding frames are"):
            messy.add_object(Grounding([np.zeros((10, 10, 3), np.uint8)], [0], [0], [np.ones((10, 10), bool)]))
        with pytest.raises(ValueError, match=r"later\[1\] is"):
            messy.add_object(_g(), later=[(live[0], 0), (np.zeros((5, 5, 3), np.uint8), 1)])
        with pytest.raises(ValueError, match="already tracked"):
            messy.add_object(_g(), obj_id=1)
        with pytest.raises(ValueError, match="unknown object id 99"):
            messy.remove_object(99)
        with pytest.raises(ValueError, match="unknown object id"):
            messy.memory_stats(99)
        with pytest.raises(ValueError, match="gap_policy"):
            messy.add_object(_g(), gap_policy="wait")

    for k, frame in enumerate(live):
        if k in (0, 5):
            assault()
        a, b = clean.step(frame, k), messy.step(frame, k)
        assert messy.object_ids == clean.object_ids == [1]
        assert torch.equal(a.objects[1].logits, b.objects[1].logits) and a.objects[1].score == b.objects[1].score
    assert messy.memory_stats(1) == clean.memory_stats(1)


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(prompt_policy="last"), "prompt_policy"),
    (dict(gap_policy="wait"), "gap_policy"),
    (dict(threshold=1.01), "threshold"),
    (dict(threshold=-0.1), "threshold"),
    (dict(lost_after=0), "lost_after"),
    (dict(found_after=1.5), "found_after"),
    (dict(max_prompt_frames=0), "max_prompt_frames"),
    (dict(num_frames=0), "num_frames"),
    (dict(dtype="int8"), "dtype"),
    (dict(dtype=torch.float64), "dtype"),
])
def test_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrackerConfig(**kwargs)


def test_dtype_names():
    assert TrackerConfig(dtype="bf16").dtype is torch.bfloat16
    assert TrackerConfig(dtype="float16").dtype is torch.float16


def test_model_in_training_mode_is_rejected():
    model = tiny_model()
    model.train()
    try:
        with pytest.raises(ValueError, match="eval mode"):
            StreamingTracker(model)
    finally:
        model.eval()


def test_pixels_of_the_right_shape_are_accepted():
    model = tiny_model()
    pixels = [sam2_pixels(FRAMES[1], 128), None]
    assert StreamingTracker(model).add_object(_g(pixels=pixels)).obj_id == 1


def test_a_failure_inside_sam2_leaves_every_object_as_it_was():
    model = tiny_model()
    live = make_frames(8, seed=4)
    clean, broken = StreamingTracker(model), StreamingTracker(model)
    for t in (clean, broken):
        t.add_object(_g())
        t.add_object(_g(sampled_indices=[2], masks=[blob_mask(2)]))
    # sam2 fails while gathering the second object's memory (the objects are tracked as one batch)
    real_gather, calls = broken.runner._memory_inputs, []

    def failing_second_object(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("device lost")
        return real_gather(*args, **kwargs)

    broken.runner._memory_inputs = failing_second_object
    with pytest.raises(RuntimeError, match="device lost"):
        broken.step(live[0], 0)  # object 1 was gathered, object 2 failed: nothing is committed
    assert len(calls) == 2
    broken.runner._memory_inputs = real_gather
    for k, frame in enumerate(live):
        a, b = clean.step(frame, k), broken.step(frame, k)
        for i in (1, 2):
            assert a.objects[i].frame_index == b.objects[i].frame_index
            assert torch.equal(a.objects[i].logits, b.objects[i].logits)
