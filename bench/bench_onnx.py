"""The onnxruntime backend's cost per frame against torch's, and the two preprocessing paths (CPU).

* ``tracker.ort_cost_ratio_<size>``: onnxruntime (CPU provider) ms/frame over torch ms/frame,
  measured in the same run, interleaved, one object with a full memory bank (as
  ``bench_tracker``: 5 prompts + 6 recent memories), SAM 2.1 Hiera-T at real size
  (``t``: random weights, 1024 input, 640x480 frames) and the tiny config
  (``tiny``: ``tiny_trackers``, 128 input). Goal at real size: <= 0.8. The CPU time
  spent in the image encoder and the memory attention is reported for both backends.

Small graphs (the tiny config) mostly measure per-call overhead: torch's and
onnxruntime's thread pools, which on a loaded 2-core machine spin against other
processes, and the Python around each call; the real-size figures measure the
arithmetic.

    python -m bench.bench_onnx [--rounds 2]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time

import torch

from bench.bench_tracker import H, W, tracker_with_full_memory
from sa2va_i_ros.testing.tiny_trackers import build_tiny_tracker
from sa2va_i_ros.tracking import StreamingTracker, TrackerConfig
from sa2va_i_ros.tracking.models import build_tracker_model
from sa2va_i_ros.tracking.onnx.export import export_tracker
from sa2va_i_ros.tracking.onnx.session import OrtGraph

NAME = "sam2.1_hiera_t"


class GraphTimes:
    """CPU seconds inside the image-encoder and memory-attention graphs (OrtGraph calls wrapped)."""

    def __init__(self) -> None:
        self.seconds = {"encoder": 0.0, "memory_attention": 0.0}
        self._call = OrtGraph.__call__
        parts = {"image_encoder": "encoder", "memory_attention": "memory_attention"}
        times = self

        def timed(graph, **inputs):
            c0 = time.process_time()
            try:
                return times._call(graph, **inputs)
            finally:
                part = parts.get(graph.path.stem)
                if part:
                    times.seconds[part] += time.process_time() - c0

        OrtGraph.__call__ = timed

    def close(self) -> None:
        OrtGraph.__call__ = self._call


def ort_twin(tracker: StreamingTracker, onnx_dir: str) -> StreamingTracker:
    """An onnxruntime tracker holding copies of ``tracker``'s objects (the same memories)."""
    twin = StreamingTracker(tracker.sam2, TrackerConfig(backend="onnxruntime", onnx_dir=onnx_dir))
    twin._objects = {k: copy.deepcopy(v) for k, v in tracker._objects.items()}
    twin.runner.maskmem_pos_enc = tracker.runner.maskmem_pos_enc
    return twin


def cost(model, key: str, rounds: int, out: dict) -> None:
    from bench.bench_tracker import timed_step

    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        export_tracker(model, folder, NAME, "configs/sam2.1/sam2.1_hiera_t.yaml")
        out[f"onnx.export_seconds_{key}"] = round(time.perf_counter() - t0, 1)
        trackers = {"torch": tracker_with_full_memory(model, 1)}
        trackers["ort"] = ort_twin(trackers["torch"], folder)
        samples = {k: [] for k in trackers}
        for r in range(rounds + 1):  # round 0 warms both up (allocators, onnxruntime's first run)
            for k, tracker in trackers.items():
                graphs = GraphTimes() if k == "ort" else None
                s = timed_step(tracker, r)
                if graphs is not None:
                    s.update(graphs.seconds)
                    graphs.close()
                if r:
                    samples[k].append(s)
            print(f"[onnx] {key} round {r}/{rounds}: torch {samples['torch'][-1]['wall'] if r else 0:.2f} s, "
                  f"ort {samples['ort'][-1]['wall'] if r else 0:.2f} s", flush=True)

    def med(k: str, part: str) -> float:
        return statistics.median(s[part] for s in samples[k])

    for k in trackers:
        prefix = f"tracker.{'ort_' if k == 'ort' else 'torch_'}{key}"
        out[f"{prefix}.ms_per_frame"] = round(1e3 * med(k, "wall"), 1)
        out[f"{prefix}.cpu_ms_per_frame"] = round(1e3 * med(k, "cpu"), 1)
        out[f"{prefix}.encoder_cpu_ms"] = round(1e3 * med(k, "encoder"), 1)
        out[f"{prefix}.memory_attention_cpu_ms"] = round(1e3 * med(k, "memory_attention"), 1)
    out[f"tracker.ort_cost_ratio_{key}"] = med("ort", "wall") / med("torch", "wall")
    out[f"tracker.ort_cpu_cost_ratio_{key}"] = med("ort", "cpu") / med("torch", "cpu")


def run(out: dict | None = None, rounds: int = 2) -> dict:
    out = {} if out is None else out
    torch.manual_seed(0)
    cost(build_tiny_tracker(NAME, seed=1)[0], "tiny", max(rounds, 10), out)
    cost(build_tracker_model(NAME), "t", rounds, out)
    out["onnx.setup"] = (f"{NAME}: real size (random weights, 1024 input) and tiny (128 input), float32, "
                         f"{H}x{W} frames, {torch.get_num_threads()} threads for both backends; onnxruntime CPU "
                         "provider")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps(run(rounds=args.rounds), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
