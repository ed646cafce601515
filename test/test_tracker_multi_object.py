"""Several objects: each equals its own offline propagation, whatever the others do."""

from __future__ import annotations

import pytest
from test_tracker_helpers import (
    EncoderCounter,
    assert_matches_offline,
    assert_mixed,
    assert_rows_agree,
    blob_mask,
    make_frames,
    object_results,
    offline_reference,
    one_torch_thread,  # noqa: F401  (autouse fixture)
    tiny_model,
)

from sa2va_i_ros.tracking import Grounding, StreamingTracker


def test_add_while_tracking_then_remove():
    model = tiny_model()
    video = make_frames(50)
    stamps = list(range(50))
    tracker = StreamingTracker(model)

    # A: grounded on frames 0..5, then live from frame 6
    a = tracker.add_object(Grounding(video[:6], stamps[:6], [1, 4], [blob_mask(1), blob_mask(4)]))
    out = list(a.frames)
    out += [tracker.step(video[t], t) for t in range(6, 20)]
    # B: the language model sampled frames 12..17 (window), frames 18, 19 arrived meanwhile
    # (A already tracked them); B catches up on its own and joins the live stream
    b = tracker.add_object(Grounding(video[12:18], stamps[12:18], [3, 1], [blob_mask(15), blob_mask(13)]),
                           later=[(video[18], 18), (video[19], 19)])
    assert b.obj_id != a.obj_id and tracker.object_ids == [a.obj_id, b.obj_id]
    assert all(set(f.objects) == {b.obj_id} for f in b.frames)
    with EncoderCounter(model) as count:
        both = [tracker.step(video[t], t) for t in range(20, 35)]
    assert count.calls == 15  # one encoder pass per live frame, shared by A and B
    assert all(set(f.objects) == {a.obj_id, b.obj_id} for f in both)
    # each object counts its own frames
    assert both[0].objects[a.obj_id].frame_index == 20
    assert both[0].objects[b.obj_id].frame_index == 20 - 12

    tracker.remove_object(a.obj_id)
    assert tracker.object_ids == [b.obj_id]
    only_b = [tracker.step(video[t], t) for t in range(35, 50)]
    assert all(set(f.objects) == {b.obj_id} for f in only_b)

    # A equals offline propagation over frames 0..34 with its prompts, unaffected by B
    ref_a = offline_reference(model, video[:35], [(1, blob_mask(1)), (4, blob_mask(4))])
    res_a = object_results(out + both, a.obj_id)
    assert_matches_offline(res_a, ref_a)
    assert_mixed(res_a)
    # B equals offline propagation over its own video 12..49 (its indices start at its window)
    ref_b = offline_reference(model, video[12:], [(3, blob_mask(15)), (1, blob_mask(13))])
    res_b = object_results(b.frames + both + only_b, b.obj_id)
    assert_matches_offline(res_b, ref_b)
    assert_mixed(res_b)
    assert [r.stamp for r in res_b] == stamps[13:]


def test_ids_are_unique_and_never_reused():
    model = tiny_model()
    frames = make_frames(3)
    tracker = StreamingTracker(model)
    g = Grounding(frames, [0, 1, 2], [0], [blob_mask(0)])
    first = tracker.add_object(g).obj_id
    chosen = tracker.add_object(g, obj_id=7).obj_id
    assert chosen == 7
    with pytest.raises(ValueError, match="already tracked"):
        tracker.add_object(g, obj_id=7)
    tracker.remove_object(first)
    nxt = tracker.add_object(g).obj_id
    assert nxt not in (first, 7)
    assert tracker.object_ids == [7, nxt]


def test_identical_objects_give_identical_results():
    """Two objects with the same prompts, batched in one call, get the same results (to rounding: rows of a
    batch are not bit-identical on every CPU, see ``assert_rows_agree``)."""
    model = tiny_model()
    frames = make_frames(12)
    tracker = StreamingTracker(model)
    g = Grounding(frames[:4], [0, 1, 2, 3], [1], [blob_mask(1)])
    a, b = tracker.add_object(g).obj_id, tracker.add_object(g).obj_id
    for k, f in enumerate(frames[4:]):
        r = tracker.step(f, k).objects
        assert_rows_agree(r[a], r[b], f"frame {k}")


def test_prepare_outside_the_tracker_then_join_equals_add_object():
    """The node seeds a new object without the tracker lock, then joins it: same outputs as add_object."""
    model = tiny_model()
    video = make_frames(30)
    stamps = list(range(30))
    grounding = Grounding(video[8:14], stamps[8:14], [0, 3, 5], [blob_mask(8), blob_mask(11), blob_mask(13)])

    reference = StreamingTracker(model)
    ref = reference.add_object(grounding, obj_id=5, later=[(video[t], t) for t in range(14, 19)])

    tracker = StreamingTracker(model)
    a = tracker.add_object(Grounding(video[:4], stamps[:4], [0], [blob_mask(0)]))
    for t in range(4, 16):
        tracker.step(video[t], t)
    prepared = tracker.prepare_object(grounding, obj_id=5, later=[(video[t], t) for t in range(14, 16)])
    assert tracker.object_ids == [a.obj_id]  # preparing leaves the tracker alone
    for t in range(16, 19):  # live frames keep flowing while the new object catches up
        assert set(tracker.step(video[t], t).objects) == {a.obj_id}
    joined = tracker.join(prepared, later=[(video[t], t) for t in range(16, 19)])
    assert tracker.object_ids == [a.obj_id, 5]
    assert [f.stamp for f in joined.frames] == [f.stamp for f in ref.frames]
    for mine, theirs in zip(joined.frames, ref.frames, strict=True):
        assert_rows_agree(mine.objects[5], theirs.objects[5], f"frame {mine.stamp}")
    with pytest.raises(ValueError, match="already tracked"):
        tracker.join(prepared)


def test_join_with_skip_takes_only_the_newest_later_frame():
    model = tiny_model()
    video = make_frames(20)
    tracker = StreamingTracker(model)
    prepared = tracker.prepare_object(Grounding(video[:5], list(range(5)), [0, 4], [blob_mask(0), blob_mask(4)]),
                                      obj_id=1)
    added = tracker.join(prepared, later=[(video[t], t) for t in range(5, 9)], gap_policy="skip")
    assert [f.stamp for f in added.frames] == [0, 1, 2, 3, 4, 8] and added.skipped == 3
