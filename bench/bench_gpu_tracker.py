"""Tracker frames per second on a GPU: each SAM 2.1 size, float16 / bfloat16, compiled or not.

Part of ``bench_gpu`` (run by ``make bench`` where CUDA is available). Real-size
random weights (the figures measure compute), one object grounded on 5 prompts,
640x480 frames; the tracker is warmed up (compiled, when asked) before timing.
The GPU is named in the results' ``machine``.
"""

from __future__ import annotations

import time

import numpy as np
import torch

SIZES = {"t": "sam2.1_hiera_t", "s": "sam2.1_hiera_s", "b+": "sam2.1_hiera_b+", "l": "sam2.1_hiera_l"}


def fps(model, dtype: str, compile: bool, frames: int) -> float:
    from sa2va_i_ros.tracking import Grounding, StreamingTracker, TrackerConfig

    tracker = StreamingTracker(model, TrackerConfig(dtype=dtype, compile=compile, channels_last=compile))
    tracker.warm_up((480, 640))
    rng = np.random.default_rng(0)
    video = [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(8)]
    mask = np.zeros((480, 640), bool)
    mask[150:330, 200:320] = True
    tracker.add_object(Grounding(video[:5], list(range(5)), list(range(5)), [mask] * 5))
    for i in range(8):  # memory fills: the timed frames are steady ones
        tracker.step(video[i % 8], i)
    sync = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for i in range(frames):
        tracker.step(video[i % 8], 8 + i)
    sync()
    return frames / (time.perf_counter() - t0)


def run(out: dict | None = None, device: str = "cuda", dtypes=("float16", "bfloat16"), compiled=(False, True),
        frames: int = 50, tiny: bool = False, sizes=tuple(SIZES)) -> dict:
    """``gpu.tracker.<size>.<dtype>[.compiled].fps``; ``tiny`` swaps in the tiny models (a code-path check)."""
    from sa2va_i_ros.testing.tiny_trackers import build_tiny_tracker
    from sa2va_i_ros.tracking.models import build_tracker_model

    out = {} if out is None else out
    for size in sizes:
        name = SIZES[size]
        model = (build_tiny_tracker(name)[0] if tiny else build_tracker_model(name)).to(device)
        for dtype in dtypes:
            for compile in compiled:
                key = f"gpu.tracker.{size}.{dtype}{'.compiled' if compile else ''}.fps"
                out[key] = round(fps(model, dtype, compile, frames), 2)
        del model
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return out
