"""Memory stays bounded: only what sam2 can still attend to is kept (structural, not timed)."""

from __future__ import annotations

import torch
from test_tracker_helpers import (
    assert_matches_offline,
    blob_mask,
    make_frames,
    object_results,
    offline_reference,
    one_torch_thread,  # noqa: F401  (autouse fixture)
    tiny_model,
)

from sa2va_i_ros.tracking import Grounding, StreamingTracker
from sa2va_i_ros.tracking.memory import memory_horizons

ENTRY_KEYS = {"maskmem_features", "maskmem_pos_enc", "obj_ptr", "object_score_logits"}


def test_horizons_follow_the_sa2va_config():
    model = tiny_model()
    assert (model.num_maskmem, model.memory_temporal_stride_for_eval, model.max_obj_ptrs_in_encoder) == (7, 1, 16)
    assert memory_horizons(model, 1 << 30) == (6, 15)
    assert memory_horizons(model, 9) == (6, 8)


def test_stored_entries_stay_constant_over_hundreds_of_frames():
    model = tiny_model()
    frames = make_frames(4)
    tracker = StreamingTracker(model)
    obj = tracker.add_object(Grounding(frames, list(range(4)), [0, 2], [blob_mask(0), blob_mask(2)])).obj_id
    live = make_frames(320, seed=1)
    stats = []
    for k, f in enumerate(live):
        tracker.step(f, k)
        stats.append(tracker.memory_stats(obj))
    steady = stats[20:]
    assert all(s == steady[0] for s in steady), {str(s) for s in steady}
    s = steady[0]
    assert (s.prompt_frames, s.pending_prompt_outputs, s.recent_frames, s.recent_memories) == (2, 0, 15, 6)

    mem = tracker._objects[obj].memory
    last = 4 + len(live) - 1
    assert sorted(mem.recent) == list(range(last - 14, last + 1))
    with_memory = sorted(t for t, e in mem.recent.items() if "maskmem_features" in e)
    assert with_memory == list(range(last - 5, last + 1))
    shared = tracker.runner.maskmem_pos_enc
    for t, e in (*mem.cond.items(), *mem.recent.items()):
        assert set(e) in (ENTRY_KEYS, {"obj_ptr"}), (t, set(e))
        if "maskmem_features" in e:
            assert e["maskmem_features"].dtype == torch.bfloat16
            assert e["maskmem_pos_enc"] is shared  # one constant, not one copy per frame
    # nothing image-sized is held: the largest tensor is a spatial memory (S/16)^2 x mem_dim
    biggest = max(e["maskmem_features"].numel() for e in mem.cond.values())
    assert biggest == (model.image_size // 16) ** 2 * model.mem_dim


def test_pruning_keeps_exactly_what_offline_attends_to():
    # 40 live frames run past both horizons; every output still equals offline.
    model = tiny_model()
    frames = make_frames(45)
    tracker = StreamingTracker(model)
    added = tracker.add_object(Grounding(frames[:5], list(range(5)), [0, 3], [blob_mask(0), blob_mask(3)]))
    live = [tracker.step(f, 5 + k) for k, f in enumerate(frames[5:])]
    ref = offline_reference(model, frames, [(0, blob_mask(0)), (3, blob_mask(3))])
    assert_matches_offline(object_results(added.frames + live, added.obj_id), ref)
