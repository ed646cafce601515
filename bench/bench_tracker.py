"""Tracker cost per frame with each SAM 2.1 size at real size, and the cost of extra objects (CPU).

Real-size random weights (sam2's configs, float32), the real 1024 input, 640x480
camera frames, every thread of this machine. Each model tracks one object
grounded as Sa2VA-i grounds by default (5 sampled frames, all prompting) with a
full memory bank: 5 prompt memories and the 6 most recent frames' memories,
which is what every frame of a long track attends to. Hiera-L also tracks 4 such
objects at once (one encoder pass, the objects batched).

* ``tracker.<size>.ms_per_frame`` / ``cpu_ms_per_frame``: median wall / CPU time of
  ``StreamingTracker.step``, with the CPU time spent in its image encoder and memory
  attention beside them (``encoder_cpu_ms``, ``memory_attention_cpu_ms``);
* ``tracker.cost_ratio_tiny_vs_large``: Hiera-T's over Hiera-L's (goal <= 0.35);
* ``tracker.extra_object_ratio``: 4 objects over 1, Hiera-L (goal <= 2.0).

Models are measured in interleaved rounds (t, s, b+, l, l with 4 objects, then
again), so that a change of load on the machine hits them all alike; the same
ratios in this process's CPU time are reported beside them.

How the memory bank is filled: the prompts go through the tracker (one encoder
pass shared by the 5 prompts); the 6 recent-frame slots are then filled with
copies of prompt memories instead of 6 tracked frames (on this CPU each would
cost the encoder plus a memory attention). The cost of a step depends on the
shapes of the bank, not on its values. The spatial memory is then a long
track's (11 frames); its pointers are 11 (5 prompts + 6 recent) where a long track
has 20 (5 + 15): 36 of about 45,100 attended tokens fewer (test_bench_tracker.py).

    python -m bench.bench_tracker [--rounds 2]
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import statistics
import time

import numpy as np
import torch

from sa2va_i_ros.tracking import Grounding, StreamingTracker
from sa2va_i_ros.tracking.models import build_tracker_model

SIZES = {"t": "sam2.1_hiera_t", "s": "sam2.1_hiera_s", "b+": "sam2.1_hiera_b+", "l": "sam2.1_hiera_l"}
PROMPTS = 5  # Sa2VA-i's default num_frames, every sampled frame prompting
OBJECTS = 4
H, W = 480, 640


def frame(i: int) -> np.ndarray:
    rng = np.random.default_rng(i % 5)
    f = rng.integers(0, 60, (H, W, 3), dtype=np.uint8)
    x = 40 + 9 * i % (W - 200)
    f[150:330, x:x + 120] = (220, 60, 60)
    return f


def mask(i: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    x = 40 + 9 * i % (W - 200)
    m[150:330, x:x + 120] = True
    return m


def tracker_with_full_memory(model, objects: int) -> StreamingTracker:
    """``objects`` tracks of 5 prompts each, memory banks full (see the module docstring)."""
    tracker = StreamingTracker(model)
    window = [frame(i) for i in range(PROMPTS)]
    raw = tracker.runner.encode(tracker.runner.pixels(window[-1]))  # one encoder pass for every prompt
    grounding = Grounding(window, list(range(PROMPTS)), list(range(PROMPTS)), [mask(i) for i in range(PROMPTS)],
                          raw_features=[raw] * PROMPTS)
    with torch.inference_mode():
        first = tracker.prepare_object(grounding, obj_id=1)
    track = first.track
    horizon = track.memory.spatial_horizon  # num_maskmem - 1 recent frames with spatial memory
    for k in range(horizon):
        t = track.next_index
        track.memory.add_tracked(t, dict(track.memory.cond[k % PROMPTS]))
        track.next_index = t + 1
    tracker.join(first)
    for obj_id in range(2, objects + 1):
        clone = copy.deepcopy(track)
        clone.obj_id = clone.presence.obj_id = obj_id
        tracker._objects[obj_id] = clone
    return tracker


class PartTimes:
    """This process's CPU time inside the image encoder and the memory attention (forward hooks)."""

    def __init__(self, model) -> None:
        self.seconds = {"encoder": 0.0, "memory_attention": 0.0}
        self._handles = []
        for name, module in (("encoder", model.image_encoder), ("memory_attention", model.memory_attention)):
            self._handles.append(module.register_forward_pre_hook(lambda *_, n=name: self._start(n)))
            self._handles.append(module.register_forward_hook(lambda *_, n=name: self._stop(n)))
        self._t0: dict[str, float] = {}

    def _start(self, name: str) -> None:
        self._t0[name] = time.process_time()

    def _stop(self, name: str) -> None:
        self.seconds[name] += time.process_time() - self._t0.pop(name)

    def close(self) -> None:
        for h in self._handles:
            h.remove()


def timed_step(tracker: StreamingTracker, i: int) -> dict[str, float]:
    """Wall and CPU seconds of one step, and the CPU seconds of its encoder and memory attention."""
    f = frame(100 + i)
    parts = PartTimes(tracker.sam2)
    t0, c0 = time.perf_counter(), time.process_time()
    tracker.step(f, i)
    out = {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0, **parts.seconds}
    parts.close()
    return out


def run(out: dict | None = None, rounds: int = 2) -> dict:
    out = {} if out is None else out
    torch.manual_seed(0)
    runs = {**{size: (name, 1) for size, name in SIZES.items()}, "l4": (SIZES["l"], OBJECTS)}
    trackers, samples, models = {}, {k: [] for k in runs}, {}
    for key, (name, objects) in runs.items():
        if name not in models:
            models[name] = build_tracker_model(name)
        trackers[key] = tracker_with_full_memory(models[name], objects)
    for r in range(rounds):
        for key, tracker in trackers.items():
            samples[key].append(timed_step(tracker, r))
            print(f"[tracker] round {r + 1}/{rounds} {key}: {samples[key][-1]['wall']:.1f} s "
                  f"({samples[key][-1]['cpu']:.1f} s cpu)", flush=True)

    def med(key: str, part: str) -> float:
        return statistics.median(s[part] for s in samples[key])

    for key in runs:
        out[f"tracker.{key}.ms_per_frame"] = round(1e3 * med(key, "wall"), 1)
        out[f"tracker.{key}.cpu_ms_per_frame"] = round(1e3 * med(key, "cpu"), 1)
        out[f"tracker.{key}.encoder_cpu_ms"] = round(1e3 * med(key, "encoder"), 1)
        out[f"tracker.{key}.memory_attention_cpu_ms"] = round(1e3 * med(key, "memory_attention"), 1)
    out["tracker.cost_ratio_tiny_vs_large"] = med("t", "wall") / med("l", "wall")
    out["tracker.extra_object_ratio"] = med("l4", "wall") / med("l", "wall")
    out["tracker.cpu_cost_ratio_tiny_vs_large"] = med("t", "cpu") / med("l", "cpu")
    out["tracker.cpu_extra_object_ratio"] = med("l4", "cpu") / med("l", "cpu")
    out["tracker.rounds"] = rounds
    out["tracker.setup"] = (f"sam2.1 configs, random weights, float32, 1024 input, {H}x{W} frames, "
                            f"{torch.get_num_threads()} threads; {PROMPTS} prompts + 6 recent memories per object")
    del trackers, models
    gc.collect()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps(run(rounds=args.rounds), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
