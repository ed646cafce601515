"""GPU figures with real-size random weights: grounding time and propagation frames per second.

Run by ``make bench`` when CUDA is available (``python -m bench.bench_gpu``).
The checkpoint has the official layout and Sa2VA-i-1B's sizes (InternViT-300M,
Qwen2.5-0.5B, SAM 2.0 Hiera-L, both decoders) with random weights, so the
figures measure compute, not accuracy. For fp16 and bf16: one grounding call
on 5 of 10 frames (640x480, median of 3 after a warm-up), and the streaming
tracker's frames per second at Hiera-L over 100 frames; then the tracker's frames
per second for each SAM 2.1 size, compiled or not (``bench_gpu_tracker``).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REAL = dict(vision_dims=dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
            llm_dims=dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                          intermediate_size=4864),
            vocab_size=151936)


def ensure_model(real: bool) -> Path:
    from sa2va_i_ros.model.sam2_model import Sam2Spec
    from sa2va_i_ros.testing.tiny_sa2va import write_tiny_checkpoint

    path = ROOT / "bench" / ".cache" / ("gpu_sa2va_i_1b_size" if real else "tiny_checkpoint")
    if not (path / "config.json").is_file():
        write_tiny_checkpoint(path, **(dict(REAL, spec=Sam2Spec()) if real else {}))
    return path


def measure(model: Path, device: str, dtype: str, frames: int = 100) -> dict:
    import torch

    from sa2va_i_ros.grounding.engine import GroundingEngine
    from sa2va_i_ros.tracking import StreamingTracker, TrackerConfig

    engine = GroundingEngine.load(str(model), device=device, dtype=dtype)
    rng = np.random.default_rng(0)
    video = [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(10)]

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    engine.ground(video, "the cup left of the bowl")  # warm-up
    times = []
    for _ in range(3):
        sync()
        t0 = time.perf_counter()
        result = engine.ground(video, "the cup left of the bowl")
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    tracker = StreamingTracker(engine.model.sam2, TrackerConfig(dtype=dtype))
    tracker.add_object(result.tracker_grounding(video, range(10)))
    live = [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(8)]
    tracker.step(live[0], -1)  # warm-up
    sync()
    t0 = time.perf_counter()
    for i in range(frames):
        tracker.step(live[i % len(live)], i)
    sync()
    fps = frames / (time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else float("nan")
    return {"grounding_ms_5_frames": round(statistics.median(times), 1), "propagation_fps": round(fps, 2),
            "peak_gpu_mb": round(peak, 1)}


def run(out: dict | None = None, device: str = "cuda", dtypes=("float16", "bfloat16"), real: bool = True,
        frames: int = 100) -> dict:
    out = {} if out is None else out
    model = ensure_model(real)
    for dtype in dtypes:
        for key, value in measure(model, device, dtype, frames).items():
            out[f"gpu.{dtype}.{key}"] = value
    out["gpu.model"] = "random weights, Sa2VA-i-1B sizes (InternViT-300M, Qwen2.5-0.5B, SAM 2.0 Hiera-L)" \
        if real else "tiny random checkpoint"
    from bench import bench_gpu_tracker

    if real:
        bench_gpu_tracker.run(out, device=device, dtypes=dtypes, frames=max(3, frames // 2))
    else:  # the code path only (tests on cpu): one size, not compiled
        bench_gpu_tracker.run(out, device=device, dtypes=dtypes, frames=3, tiny=True, sizes=("t",), compiled=(False,))
    return out


if __name__ == "__main__":
    print(json.dumps(run()))
