"""The stream's ``num_frames`` choice: when it equals offline propagation and when it cannot.

sam2 reads the video length only through ``min(num_frames, max_obj_ptrs_in_encoder)``,
which sets the object-pointer window and, with temporal encoding of pointers on,
the normalisation of their positions. The tracker tells sam2 a huge length.
"""

from __future__ import annotations

from test_tracker_helpers import (
    SAM21_TPOS,
    assert_matches_offline,
    assert_mixed,
    blob_mask,
    make_frames,
    object_results,
    offline_reference,
    one_torch_thread,  # noqa: F401  (autouse fixture)
    tiny_model,
)

from sa2va_i_ros.tracking import STREAM_NUM_FRAMES, Grounding, StreamingTracker, TrackerConfig


def _track(model, frames, n_window, prompts, config=None):
    tracker = StreamingTracker(model, config)
    idx = [i for i, _ in prompts]
    masks = [m for _, m in prompts]
    added = tracker.add_object(Grounding(frames[:n_window], list(range(n_window)), idx, masks))
    live = [tracker.step(f, n_window + k) for k, f in enumerate(frames[n_window:])]
    return object_results(added.frames + live, added.obj_id)


def _max_logit_diff(results, ref) -> float:
    return max(float((r.logits.cpu() - ref[r.frame_index].logits).abs().max()) for r in results)


def test_default_is_a_full_pointer_window():
    assert TrackerConfig().num_frames == STREAM_NUM_FRAMES
    assert tiny_model().max_obj_ptrs_in_encoder <= STREAM_NUM_FRAMES


def test_sa2va_config_equals_offline_on_short_videos():
    # SAM 2.0 / Sa2VA: add_tpos_enc_to_obj_ptrs=False, so the length does not matter.
    model = tiny_model()
    assert not model.add_tpos_enc_to_obj_ptrs
    frames = make_frames(9)
    prompts = [(1, blob_mask(1))]
    results = _track(model, frames, 3, prompts)
    assert_matches_offline(results, offline_reference(model, frames, prompts))
    assert_mixed(results, at_least=1)


def test_sam21_tpos_differs_on_short_videos_unless_told_the_length():
    model = tiny_model(0, SAM21_TPOS)
    assert model.add_tpos_enc_to_obj_ptrs and model.use_signed_tpos_enc_to_obj_ptrs
    frames = make_frames(9)
    prompts = [(1, blob_mask(1)), (4, blob_mask(4))]
    ref = offline_reference(model, frames, prompts)
    # the stream cannot know the video has 9 frames: pointer positions are normalised by
    # 15 instead of 8, and the logits differ
    streamed = _track(model, frames, 5, prompts)
    assert [r.frame_index for r in streamed] == sorted(ref)
    assert _max_logit_diff(streamed, ref) > 2e-4
    # told the length, it is offline again: num_frames is the only difference
    told = _track(model, frames, 5, prompts, TrackerConfig(num_frames=len(frames)))
    assert_matches_offline(told, ref)
    assert _max_logit_diff(told, ref) <= 1e-6


def test_sam21_tpos_equals_offline_once_the_pointer_window_is_full():
    model = tiny_model(0, SAM21_TPOS)
    frames = make_frames(26)  # >= max_obj_ptrs_in_encoder = 16 frames
    prompts = [(2, blob_mask(2)), (7, blob_mask(7))]
    results = _track(model, frames, 10, prompts)
    assert_matches_offline(results, offline_reference(model, frames, prompts))
    assert_mixed(results)
