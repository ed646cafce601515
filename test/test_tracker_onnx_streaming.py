"""End to end: the onnxruntime backend streams the same masks as the torch backend (tiny models).

Two objects, grounded with different prompts, then 30 live frames; every frame
of both objects (their catch-up through the window and the live steps) must give
IoU >= 0.999, logits within 1e-4 and presence scores within 1e-5 of the torch
backend, which the other tracker tests hold equal to sam2's offline predictor.
The models are the tiny checkpoint SAM2 (SAM 2.0 rules) and the tiny SAM 2.1
Hiera-T (temporal pointer encoding, no-object spatial embedding): the memory
rules differ between them, the graphs' architectures are the same in every
config except the image encoder's trunk (test_tracker_onnx_modules.py and
test_tracker_onnx_real_size.py check that per module).
"""

from __future__ import annotations

import pytest
from onnx_helpers import exported
from test_tracker_helpers import assert_mixed, blob_mask, iou, make_frames
from tracker_model_helpers import product_model

from sa2va_i_ros.tracking import Grounding, StreamingTracker, TrackerConfig

LIVE = 30


def _stream(model, config):
    frames = make_frames(10 + LIVE)
    tracker = StreamingTracker(model, config)
    out = {1: [], 2: []}
    for obj_id, prompts in ((1, [1]), (2, [3, 6])):
        masks = [blob_mask(i, shift=6 * (obj_id - 1)) for i in prompts]
        added = tracker.add_object(Grounding(frames[:10], list(range(10)), prompts, masks), obj_id=obj_id,
                                   later=[(frames[10], 10)])
        out[obj_id] += [f.objects[obj_id] for f in added.frames]
    for k, frame in enumerate(frames[11:], start=11):
        result = tracker.step(frame, k)
        for obj_id in out:
            out[obj_id].append(result.objects[obj_id])
    return tracker, out


@pytest.mark.parametrize("name", ["checkpoint", "sam2.1_hiera_t"])
def test_onnxruntime_streams_the_torch_backends_masks(name):
    model = product_model(name)
    _, ref = _stream(model, TrackerConfig())
    tracker, got = _stream(model, TrackerConfig(backend="onnxruntime", onnx_dir=str(exported(name))))
    assert tracker.runner.calls is not model  # the graphs ran, not the modules
    for obj_id in ref:
        assert len(got[obj_id]) == len(ref[obj_id]) >= LIVE
        assert_mixed(ref[obj_id])
        for a, b in zip(got[obj_id], ref[obj_id], strict=True):
            assert (a.frame_index, a.is_prompt, a.stamp) == (b.frame_index, b.is_prompt, b.stamp)
            assert iou(a.mask, b.mask) >= 0.999, (obj_id, b.frame_index, iou(a.mask, b.mask))
            assert float((a.logits - b.logits).abs().max()) <= 1e-4
            assert abs(a.score - b.score) <= 1e-5
