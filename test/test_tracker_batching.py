"""Several objects on one frame: one encoder pass, memory attention / decoder / memory encoder batched.

The reference is per-object stepping: each object alone in its own tracker (which is
also what sam2's offline predictor does, one object at a time).
"""

from __future__ import annotations

import pytest
import torch
from test_tracker_helpers import (
    EncoderCounter,
    assert_rows_agree,
    blob_mask,
    make_frames,
    object_results,
    one_torch_thread,  # noqa: F401  (autouse fixture)
)
from tracker_model_helpers import product_model

from sa2va_i_ros.tracking import Grounding, StreamingTracker

VIDEO = make_frames(40)
# obj_id: (first frame of its grounding window, window length, prompted window indices). Each joins
# when its window ends. A and B have one prompt each but different frame counters (same memory
# shapes, their own pointer positions); C and D have two prompts (another shape). From frame
# STEADY on every memory is full: two batches of two objects per frame.
OBJECTS = {1: (0, 6, [1]), 2: (4, 6, [2]), 3: (2, 8, [0, 5]), 4: (10, 6, [1, 3])}
STEADY = 30


def _grounding(start: int, length: int, prompts: list[int]) -> Grounding:
    frames = VIDEO[start:start + length]
    return Grounding(frames, list(range(start, start + length)), prompts,
                     [blob_mask(start + p, shift=2 * k) for k, p in enumerate(prompts)])


def _run(model, objects: dict, counters=()) -> dict[int, list]:
    """Step the video, adding each object when its window ends; outputs per object."""
    tracker = StreamingTracker(model)
    outputs: dict[int, list] = {i: [] for i in objects}
    for t in range(len(VIDEO)):
        for obj_id, (start, length, prompts) in objects.items():
            if start + length == t:
                added = tracker.add_object(_grounding(start, length, prompts), obj_id=obj_id)
                outputs[obj_id] += object_results(added.frames, obj_id)
        if t == STEADY:
            for c in counters:
                c.__enter__()
        for obj_id, r in tracker.step(VIDEO[t], t).objects.items():
            outputs[obj_id].append(r)
    for c in counters:
        c.__exit__(None, None, None)
    return outputs


class AttentionCalls:
    """Counts memory-attention forward passes and the batch size of each."""

    def __init__(self, model) -> None:
        self.model, self.batches = model, []

    def __enter__(self):
        self._h = self.model.memory_attention.register_forward_hook(
            lambda mod, args, kwargs, out: self.batches.append(out.shape[1]), with_kwargs=True)
        return self

    def __exit__(self, *exc) -> None:
        self._h.remove()


@pytest.mark.parametrize("name", ["checkpoint", "sam2.1_hiera_s"])
def test_batched_objects_equal_per_object_stepping(name):
    model = product_model(name)
    encoder, attention = EncoderCounter(model), AttentionCalls(model)
    together = _run(model, OBJECTS, (encoder, attention))
    steps = len(VIDEO) - STEADY
    assert encoder.calls == steps  # one encoder pass per frame for all four
    assert attention.batches == [2, 2] * steps  # two shape groups of two objects, each one call
    tracked = 0
    for obj_id, spec in OBJECTS.items():
        alone = _run(model, {obj_id: spec})[obj_id]
        assert [r.stamp for r in together[obj_id]] == [r.stamp for r in alone]
        for a, b in zip(together[obj_id], alone, strict=True):
            assert_rows_agree(a, b, f"object {obj_id} frame {a.stamp}")
        tracked += sum(r.mask.any() for r in together[obj_id] if not r.is_prompt)
    assert tracked > 0


def test_objects_in_one_batch_keep_their_own_memory():
    """Two objects batched together but seeded differently give different outputs."""
    model = product_model("checkpoint")
    tracker = StreamingTracker(model)
    a = tracker.add_object(Grounding(VIDEO[:4], [0, 1, 2, 3], [1], [blob_mask(1)])).obj_id
    b = tracker.add_object(Grounding(VIDEO[:4], [0, 1, 2, 3], [1], [blob_mask(1, shift=20)])).obj_id
    with AttentionCalls(model) as attention:
        results = [tracker.step(VIDEO[t], t).objects for t in range(4, 12)]
    assert attention.batches == [2] * 8
    assert any(not torch.equal(r[a].logits, r[b].logits) for r in results)
