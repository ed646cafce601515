"""The streaming tracker equals sam2's offline SAM2VideoPredictor (Sa2VA-i's propagation), fp32.

Every test runs for each tracker model: the checkpoint's SAM 2.0 Hiera-L (Sa2VA-i's own
configuration, tiny) and tiny versions of sam2's eight released configs, the tracker's loaded
by the product path and the reference built and loaded by sam2 itself from the same file.
All videos have >= 16 frames, where SAM 2.1's pointer encoding does not depend on the
video's length (test_tracker_num_frames and the pipeline test cover shorter ones).
"""

from __future__ import annotations

import pytest
from test_tracker_helpers import (
    assert_matches_offline,
    assert_mixed,
    blob_mask,
    disc_and_line_mask,
    make_frames,
    object_results,
    offline_reference,
    one_torch_thread,  # noqa: F401  (autouse fixture)
)
from tracker_model_helpers import ALL_TRACKERS, product_model, reference_model

from sa2va_i_ros.tracking import Grounding, StreamingTracker, TrackerConfig


@pytest.fixture(params=ALL_TRACKERS)
def models(request):
    """(the tracker's model, sam2's offline reference model) of one tracker choice."""
    return product_model(request.param), reference_model(request.param)


def _stamps(n: int, start: int = 0) -> list[str]:
    return [f"t{i}" for i in range(start, start + n)]


def test_all_prompts_unsorted_duplicates_and_future_prompts(models):
    model, ref_model = models
    frames = make_frames(24)
    # unsorted, a duplicate (the later mask wins), prompts after the first tracked frames
    sampled = [9, 3, 17, 9, 6]
    masks = [blob_mask(9), blob_mask(3), blob_mask(17), blob_mask(9, shift=4), blob_mask(6, shift=-2)]
    tracker = StreamingTracker(model)
    added = tracker.add_object(Grounding(frames, _stamps(24), sampled, masks))

    ref = offline_reference(ref_model, frames, list(zip(sampled, masks, strict=True)))
    results = object_results(added.frames, added.obj_id)
    assert_matches_offline(results, ref)
    assert_mixed(results)
    assert [r.frame_index for r in results if r.is_prompt] == [3, 6, 9, 17]
    assert [r.stamp for r in results] == _stamps(21, start=3)
    # the duplicate's last mask is the output of frame 9 (a prompt frame outputs its mask)
    assert results[9 - 3].mask.sum() > 0 and (results[9 - 3].mask == ref[9].mask).all()


def test_first_policy_uses_only_the_earliest_sampled_frame(models):
    model, ref_model = models
    frames = make_frames(20)
    sampled = [8, 4, 13, 4]
    masks = [blob_mask(8), blob_mask(4, shift=6), blob_mask(13), blob_mask(4)]
    tracker = StreamingTracker(model, TrackerConfig(prompt_policy="first"))
    added = tracker.add_object(Grounding(frames, _stamps(20), sampled, masks))

    ref = offline_reference(ref_model, frames, [(4, blob_mask(4))])
    results = object_results(added.frames, added.obj_id)
    assert_matches_offline(results, ref)
    assert_mixed(results)
    assert [r.frame_index for r in results if r.is_prompt] == [4]
    # and it is not the 'all' result
    all_ref = offline_reference(ref_model, frames, list(zip(sampled, masks, strict=True)))
    assert any((all_ref[t].mask != ref[t].mask).any() for t in ref)


def test_short_buffer_then_live_frames(models):
    model, ref_model = models
    frames = make_frames(44)
    sampled, masks = [1, 3], [blob_mask(1), blob_mask(3)]
    tracker = StreamingTracker(model)
    added = tracker.add_object(Grounding(frames[:4], _stamps(4), sampled, masks))
    live = [tracker.step(f, s) for f, s in zip(frames[4:], _stamps(40, start=4), strict=True)]

    ref = offline_reference(ref_model, frames, list(zip(sampled, masks, strict=True)))
    results = object_results(added.frames + live, added.obj_id)
    assert_matches_offline(results, ref)
    assert_mixed(results)
    assert [f.stamp for f in live] == _stamps(40, start=4)


def test_single_frame_window(models):
    model, ref_model = models
    frames = make_frames(25)
    tracker = StreamingTracker(model)
    added = tracker.add_object(Grounding(frames[:1], ["a"], [0], [blob_mask(0)]))
    live = [tracker.step(f, i) for i, f in enumerate(frames[1:])]
    assert_matches_offline(object_results(added.frames + live, 1),
                           offline_reference(ref_model, frames, [(0, blob_mask(0))]))


def test_catch_up_tracks_every_frame_that_arrived_during_grounding(models):
    model, ref_model = models
    frames = make_frames(30)
    window, later, live = frames[:8], frames[8:20], frames[20:]
    stamps = _stamps(30)
    tracker = StreamingTracker(model, TrackerConfig(gap_policy="catch_up"))
    added = tracker.add_object(Grounding(window, stamps[:8], [2, 5], [blob_mask(2), blob_mask(5)]),
                               later=list(zip(later, stamps[8:20], strict=True)))
    assert added.skipped == 0 and [f.stamp for f in added.frames] == stamps[2:20]
    steps = [tracker.step(f, s) for f, s in zip(live, stamps[20:], strict=True)]

    ref = offline_reference(ref_model, frames, [(2, blob_mask(2)), (5, blob_mask(5))])
    results = object_results(added.frames + steps, added.obj_id)
    assert_matches_offline(results, ref)
    assert_mixed(results)


def test_skip_jumps_to_the_newest_frame_without_a_memory_gap(models):
    model, ref_model = models
    frames = make_frames(30)
    window, later, live = frames[:8], frames[8:20], frames[20:]
    stamps = _stamps(30)
    tracker = StreamingTracker(model, TrackerConfig(gap_policy="catch_up"))
    added = tracker.add_object(Grounding(window, stamps[:8], [2, 5], [blob_mask(2), blob_mask(5)]),
                               later=list(zip(later, stamps[8:20], strict=True)), gap_policy="skip")
    assert added.skipped == 11
    assert [f.stamp for f in added.frames] == stamps[2:8] + [stamps[19]]
    steps = [tracker.step(f, s) for f, s in zip(live, stamps[20:], strict=True)]

    # The object saw window + newest later frame + live frames, with consecutive indices:
    # offline propagation over exactly that video.
    seen = window + [later[-1]] + live
    ref = offline_reference(ref_model, seen, [(2, blob_mask(2)), (5, blob_mask(5))])
    results = object_results(added.frames + steps, added.obj_id)
    assert_matches_offline(results, ref)
    assert_mixed(results)
    assert [r.stamp for r in results][6] == stamps[19]


def test_large_odd_sized_frames(models):
    # Frames larger than S and of an odd size: the (S, S) -> (H, W) output resize and the
    # antialiased prompt downsizing both matter here (a one-step low-res -> (H, W) resize
    # or a prompt resized without antialiasing fails this test).
    model, ref_model = models
    size = (203, 297)
    frames = make_frames(16, size=size)
    prompts = [(1, disc_and_line_mask(size)), (6, blob_mask(6, size, shift=5))]
    tracker = StreamingTracker(model)
    added = tracker.add_object(Grounding(frames[:8], _stamps(8), [i for i, _ in prompts], [m for _, m in prompts]))
    live = [tracker.step(f, s) for f, s in zip(frames[8:], _stamps(8, start=8), strict=True)]
    results = object_results(added.frames + live, added.obj_id)
    assert results[0].mask.shape == size
    assert_matches_offline(results, offline_reference(ref_model, frames, prompts))
    assert_mixed(results)


def test_an_empty_prompt_mask(models):
    # Grounding may find nothing on a sampled frame: an empty prompt is a "no object" memory.
    # SAM 2.1 adds its no-object embedding to that memory (no_obj_embed_spatial); a prompt
    # memory encoded as if the object were there fails this test for the SAM 2.1 configs.
    model, ref_model = models
    frames = make_frames(20)
    empty = blob_mask(4) & False
    prompts = [(1, blob_mask(1)), (4, empty), (9, blob_mask(9))]
    tracker = StreamingTracker(model)
    added = tracker.add_object(Grounding(frames[:10], _stamps(10), [i for i, _ in prompts], [m for _, m in prompts]))
    live = [tracker.step(f, s) for f, s in zip(frames[10:], _stamps(10, start=10), strict=True)]
    results = object_results(added.frames + live, added.obj_id)
    assert not results[4 - 1].mask.any() and results[4 - 1].score < 0.5
    assert_matches_offline(results, offline_reference(ref_model, frames, prompts))
    assert_mixed(results)
