"""A catch-up that skips window frames equals sam2's offline propagation over the frames it processed.

The perception worker thins the frames between the prompted ones when the
tracker cannot process them all within ``max_catch_up_sec``; ``advance_object``
then renumbers the prompts ahead to the index they are reached at. The
reference is sam2's own offline predictor run on the thinned video.
"""

from __future__ import annotations

import pytest
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
from tracker_model_helpers import SAM2_NAMES, product_model, reference_model

from sa2va_i_ros.tracking import Grounding, StreamingTracker, TrackerConfig


def _thinned_run(model, frames, prompts, keep, later_keep=(), live=(), config=None):
    """Seed on ``frames`` (the window), process window frames ``keep``, then later frames, join, step live."""
    tracker = StreamingTracker(model, config)
    g = Grounding(frames, list(range(len(frames))), [i for i, _ in prompts], [m for _, m in prompts])
    prepared = tracker.seed_object(g, obj_id=7)
    out = [tracker.advance_object(prepared, window_index=t) for t in keep]
    out += [tracker.advance_object(prepared, frame=f, stamp=s) for s, f in later_keep]
    tracker.join(prepared)
    out += [tracker.step(f, s) for s, f in live]
    return object_results(out, 7)


@pytest.mark.parametrize("overrides", [(), SAM21_TPOS], ids=["sa2va_sam20", "sam21_tpos"])
def test_skipped_window_frames_equal_offline_on_the_thinned_video(overrides):
    model = tiny_model(0, overrides)
    frames = make_frames(40)
    window = frames[:30]
    prompts = [(3, blob_mask(3)), (12, blob_mask(12)), (21, blob_mask(21, shift=3)), (29, blob_mask(29))]
    keep = [3, 5, 9, 12, 13, 17, 21, 25, 29]  # every prompt, gaps of various lengths before them
    later = [(31, frames[31]), (35, frames[35])]
    live = [(k, frames[k]) for k in range(36, 40)]
    results = _thinned_run(model, window, prompts, keep, later, live, TrackerConfig(num_frames=1 << 30))

    # the object numbers its frames from the first prompted one: the frames before it stay in the video
    seen = window[:3] + [window[t] for t in keep] + [f for _, f in later] + [f for _, f in live]
    position = {t: 3 + k for k, t in enumerate(keep)}
    ref = offline_reference(model, seen, [(position[i], m) for i, m in prompts])
    assert_matches_offline(results, ref)
    assert_mixed(results)
    assert [r.stamp for r in results] == keep + [31, 35] + list(range(36, 40))
    assert [r.frame_index for r in results if r.is_prompt] == [position[i] for i, _ in prompts]


@pytest.mark.parametrize("name", SAM2_NAMES)
def test_a_thinned_catch_up_equals_offline_for_every_tracker_model(name):
    """The same for each of sam2's released configs (tiny), loaded by the product path; the reference is
    sam2's own predictor built and loaded by sam2 from the same file (SAM 2.1's pointer encoding and
    no-object memories included)."""
    frames = make_frames(30)
    window = frames[:22]
    prompts = [(2, blob_mask(2)), (8, blob_mask(8, shift=3)), (21, blob_mask(21))]
    keep = [2, 4, 8, 9, 13, 17, 21]
    later = [(23, frames[23])]
    live = [(k, frames[k]) for k in range(24, 30)]
    results = _thinned_run(product_model(name), window, prompts, keep, later, live, TrackerConfig(num_frames=1 << 30))
    seen = window[:2] + [window[t] for t in keep] + [f for _, f in later] + [f for _, f in live]
    assert len(seen) >= 16  # SAM 2.1's pointer encoding then does not depend on the video's length
    position = {t: 2 + k for k, t in enumerate(keep)}
    ref = offline_reference(reference_model(name), seen, [(position[i], m) for i, m in prompts])
    assert_matches_offline(results, ref)
    assert [r.frame_index for r in results if r.is_prompt] == [position[i] for i, _ in prompts]


def test_unsorted_prompts_keep_sam2s_insertion_order():
    model = tiny_model()
    frames = make_frames(24)
    prompts = [(15, blob_mask(15)), (2, blob_mask(2)), (9, blob_mask(9, shift=-3))]
    keep = [2, 6, 9, 15, 20, 23]
    results = _thinned_run(model, frames, prompts, keep)
    position = {t: 2 + k for k, t in enumerate(keep)}
    ref = offline_reference(model, frames[:2] + [frames[t] for t in keep], [(position[i], m) for i, m in prompts])
    assert_matches_offline(results, ref)


def test_every_window_frame_is_prepare_object():
    """Processing every window frame one at a time is exactly prepare_object (and add_object)."""
    model = tiny_model()
    frames = make_frames(16)
    prompts = [(2, blob_mask(2)), (7, blob_mask(7))]
    results = _thinned_run(model, frames, prompts, list(range(2, 16)))
    g = Grounding(frames, list(range(16)), [2, 7], [blob_mask(2), blob_mask(7)])
    whole = object_results(StreamingTracker(model).add_object(g).frames, 1)
    assert [r.frame_index for r in results] == [r.frame_index for r in whole]
    assert all((a.logits == b.logits).all() and a.score == b.score for a, b in zip(results, whole, strict=True))


@pytest.mark.parametrize("steps, message", [
    ([dict(window_index=3)], "first prompted"),
    ([dict(window_index=2), dict(window_index=9)], "cannot be skipped"),
    ([dict(window_index=2), dict(window_index=2)], "already processed"),
    ([dict(window_index=2), dict(frame="later")], "later frames come after"),
])
def test_bad_orders_are_refused_and_change_nothing(steps, message):
    model = tiny_model()
    frames = make_frames(12)
    tracker = StreamingTracker(model)
    prepared = tracker.seed_object(Grounding(frames, list(range(12)), [2, 6], [blob_mask(2), blob_mask(6)]),
                                   obj_id=1)
    *good, bad = steps
    for step in good:
        tracker.advance_object(prepared, **step)
    before = (prepared.position, len(prepared.frames), prepared.track.next_index)
    if bad.get("frame") == "later":
        bad = dict(frame=frames[11], stamp=11)
    with pytest.raises(ValueError, match=message):
        tracker.advance_object(prepared, **bad)
    assert (prepared.position, len(prepared.frames), prepared.track.next_index) == before
    with pytest.raises(ValueError, match="not reached its prompted"):
        tracker.join(prepared)
    assert tracker.object_ids == []
