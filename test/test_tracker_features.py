"""Image-encoder reuse: grounding's features are not recomputed, live frames are encoded once."""

from __future__ import annotations

import torch
from test_tracker_helpers import (
    EncoderCounter,
    assert_matches_offline,
    blob_mask,
    make_frames,
    object_results,
    offline_reference,
    one_torch_thread,  # noqa: F401  (autouse fixture)
    tiny_model,
)

from sa2va_i_ros.model.preprocess import sam2_pixels
from sa2va_i_ros.model.sam2_model import encode_image
from sa2va_i_ros.tracking import Grounding, StreamingTracker, TrackerConfig

N = 12
SAMPLED = [2, 6, 6, 9]


def _grounding(frames, **extra):
    masks = [blob_mask(2), blob_mask(6), blob_mask(6, shift=2), blob_mask(9)]
    return Grounding(frames[:N], list(range(N)), SAMPLED, masks, **extra)


def _raw(model, frame):
    with torch.inference_mode():
        return encode_image(model, sam2_pixels(frame, model.image_size)[None])


def test_precomputed_features_are_reused_and_give_the_same_result():
    model = tiny_model()
    frames = make_frames(N + 5)
    raw = [_raw(model, frames[i]) for i in SAMPLED]

    plain = StreamingTracker(model)
    with EncoderCounter(model) as count_plain:
        ref_frames = plain.add_object(_grounding(frames)).frames
    # distinct prompted frames 2, 6, 9 + tracked window frames 3..11 except the prompts
    assert count_plain.calls == 3 + 7

    reuse = StreamingTracker(model)
    with EncoderCounter(model) as count_reuse:
        added = reuse.add_object(_grounding(frames, raw_features=raw),
                                 later=[(frames[N], "l0"), (frames[N + 1], "l1")])
        assert count_reuse.calls == 7 + 2  # only the non-sampled window frames and the later ones
        reuse.step(frames[N + 2], "s0")
        assert count_reuse.calls == 7 + 2 + 1
    assert len(added.frames) == len(ref_frames) + 2
    for a, b in zip(ref_frames, added.frames[:-2], strict=True):
        assert torch.equal(a.objects[1].logits, b.objects[1].logits)


def test_first_policy_reuses_features_of_sampled_frames_it_tracks():
    model = tiny_model()
    frames = make_frames(N)
    raw = [_raw(model, frames[i]) for i in SAMPLED]
    tracker = StreamingTracker(model, TrackerConfig(prompt_policy="first"))
    with EncoderCounter(model) as count:
        added = tracker.add_object(_grounding(frames, raw_features=raw))
    assert count.calls == 10 - 3  # window frames 2..11; 2 (prompt), 6 and 9 (tracked) come precomputed
    ref = offline_reference(model, frames, [(2, blob_mask(2))])
    assert_matches_offline(object_results(added.frames, added.obj_id), ref)


def test_precomputed_pixels_are_what_the_encoder_sees():
    # Pixels given for the sampled frames replace preprocessing: feed the offline
    # reference the same tensors and the outputs agree; feed the tracker different
    # pixels and its prompt memories change.
    model = tiny_model()
    frames = make_frames(N)
    own = [sam2_pixels(f, model.image_size) for f in frames]
    altered = [p.clone() for p in own]
    for i in set(SAMPLED):
        altered[i] = own[i] * 0.5
    pixels = [altered[i] for i in SAMPLED]
    tracker = StreamingTracker(model)
    with EncoderCounter(model) as count:
        added = tracker.add_object(_grounding(frames, pixels=pixels))
    assert count.calls == 3 + 7
    prompts = [(2, blob_mask(2)), (6, blob_mask(6)), (6, blob_mask(6, shift=2)), (9, blob_mask(9))]
    results = object_results(added.frames, added.obj_id)
    assert_matches_offline(results, offline_reference(model, frames, prompts, pixels=altered))
    plain = offline_reference(model, frames, prompts, pixels=own)
    assert any(float((r.logits - plain[r.frame_index].logits).abs().max()) > 1e-3 for r in results)


def test_live_frames_run_the_encoder_once_for_all_objects():
    model = tiny_model()
    frames = make_frames(20)
    tracker = StreamingTracker(model)
    with EncoderCounter(model) as idle:
        assert tracker.step(frames[0], "nothing tracked").objects == {}
    assert idle.calls == 0
    tracker.add_object(Grounding(frames[:3], [0, 1, 2], [0], [blob_mask(0)]))
    tracker.add_object(Grounding(frames[:3], [0, 1, 2], [1], [blob_mask(1)]))
    tracker.add_object(Grounding(frames[:3], [0, 1, 2], [2], [blob_mask(2)]))
    with EncoderCounter(model) as count:
        for k, f in enumerate(frames[3:]):
            assert len(tracker.step(f, k).objects) == 3
    assert count.calls == 17
