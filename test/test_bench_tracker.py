"""bench/bench_tracker.py measures steps on a filled memory bank: the bank is the one a long track attends to."""

from __future__ import annotations

from test_tracker_batching import AttentionCalls
from test_tracker_helpers import one_torch_thread  # noqa: F401  (autouse fixture)
from tracker_model_helpers import product_model

from bench import bench_tracker
from sa2va_i_ros.tracking import Grounding, StreamingTracker


def _attended(tracker: StreamingTracker, obj_id: int) -> tuple[int, int]:
    """(spatial memory tokens, pointer tokens) the object attends to on its next frame."""
    track = tracker._objects[obj_id]
    frame = bench_tracker.frame(0)
    feats = tracker.runner.features(tracker.runner.encode(tracker.runner.pixels(frame)))
    rec = tracker.runner._memory_inputs(feats, *track.job())
    return rec.memory.shape[0] - rec.num_obj_ptr_tokens, rec.num_obj_ptr_tokens


def test_the_benchmarks_bank_equals_a_long_tracks_spatial_memory():
    model = product_model("sam2.1_hiera_t")
    bench = bench_tracker.tracker_with_full_memory(model, 4)
    assert bench.object_ids == [1, 2, 3, 4]
    stats = bench.memory_stats(4)
    assert (stats.prompt_frames, stats.recent_memories) == (bench_tracker.PROMPTS, 6)

    # a real track: the same 5 prompts, then 30 tracked frames
    real = StreamingTracker(model)
    window = [bench_tracker.frame(i) for i in range(bench_tracker.PROMPTS)]
    real.add_object(Grounding(window, list(range(5)), list(range(5)), [bench_tracker.mask(i) for i in range(5)]))
    for t in range(30):
        real.step(bench_tracker.frame(10 + t), t)
    bench_spatial, bench_pointers = _attended(bench, 1)
    real_spatial, real_pointers = _attended(real, 1)
    assert bench_spatial == real_spatial  # 11 spatial memories
    tokens_per_pointer = model.hidden_dim // model.mem_dim
    assert (bench_pointers, real_pointers) == (11 * tokens_per_pointer, 20 * tokens_per_pointer)

    with AttentionCalls(model) as attention:
        result = bench.step(bench_tracker.frame(50), 0)
    assert set(result.objects) == {1, 2, 3, 4} and attention.batches == [4]  # the four objects in one batch


def test_a_timed_step_reports_its_parts():
    bench = bench_tracker.tracker_with_full_memory(product_model("sam2.1_hiera_t"), 2)
    parts = bench_tracker.timed_step(bench, 0)
    assert parts["encoder"] > 0 and parts["memory_attention"] > 0
    assert parts["cpu"] >= parts["encoder"] + parts["memory_attention"]
