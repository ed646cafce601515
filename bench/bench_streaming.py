"""Streaming tracker vs sam2's offline predictor over a long video: per-frame time and RSS.

Both track one object with the tiny SAM2 spec on CPU over the same synthetic
64x48 frames (a moving blob). What the figures show:

* ``time_ratio_late_early``: median per-frame time of frames 1900-2000 over
  frames 100-200 (goal <= 1.10: no slow-down as the video grows);
* ``rss_growth_mb``: VmRSS after the last frame minus after frame 200 (goal <= 32).

The offline predictor gets its frames lazily (a sequence that preprocesses a frame
when sam2 indexes it, as its async loader does) so its figures show the growth of
its inference state, not of a decoded video held in memory.

    python -m bench.bench_streaming [--frames N]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import tempfile
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # before sam2 imports tqdm

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from sa2va_i_ros.model.preprocess import sam2_pixels
from sa2va_i_ros.model.sam2_model import build_sam2
from sa2va_i_ros.testing.tiny_sa2va import TINY_SAM2
from sa2va_i_ros.tracking import Grounding, StreamingTracker

TINY_SPEC = TINY_SAM2  # the SAM2 of the tiny checkpoints (tests, demo)
FRAME_H, FRAME_W = 48, 64
WINDOW = 8
SAMPLED = (0, 4)
EARLY = (100, 200)
LATE_FROM_END = 100  # frames (N-100, N]
RSS_AT = 200


def frame(i: int) -> np.ndarray:
    """Synthetic RGB frame i: a red blob bouncing over a fixed noise background."""
    rng = np.random.default_rng(i % 7)
    f = rng.integers(0, 40, (FRAME_H, FRAME_W, 3), dtype=np.uint8)
    x = abs((i * 2) % (2 * (FRAME_W - 14)) - (FRAME_W - 14))
    f[16:32, x:x + 12] = (220, 60, 60)
    return f


def mask(i: int) -> np.ndarray:
    m = np.zeros((FRAME_H, FRAME_W), bool)
    x = abs((i * 2) % (2 * (FRAME_W - 14)) - (FRAME_W - 14))
    m[16:32, x:x + 12] = True
    return m


def proc_status_mb(key: str = "VmRSS") -> float:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM...), in MB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no {key} in /proc/self/status")


def rss_mb() -> float:
    return proc_status_mb("VmRSS")


def _ratio(times: dict[int, float], n: int) -> float:
    early = [times[i] for i in range(EARLY[0], EARLY[1]) if i in times]
    late = [times[i] for i in range(n - LATE_FROM_END, n) if i in times]
    return statistics.median(late) / statistics.median(early)


def _summary(times: dict[int, float], rss_early: float, rss_end: float, n: int,
             cpu_times: dict[int, float] | None = None) -> dict:
    early = [times[i] for i in range(EARLY[0], EARLY[1]) if i in times]
    late = [times[i] for i in range(n - LATE_FROM_END, n) if i in times]
    return {
        "time_ratio_late_early": statistics.median(late) / statistics.median(early),
        # this process's CPU time per frame: the same trend without the noise of other processes
        "cpu_time_ratio_late_early": _ratio(cpu_times, n) if cpu_times else float("nan"),
        "rss_growth_mb": rss_end - rss_early,
        "ms_per_frame": 1000 * statistics.median(times.values()),
        "ms_per_frame_early": 1000 * statistics.median(early),
        "ms_per_frame_late": 1000 * statistics.median(late),
    }


def bench_streaming(model, n: int) -> dict:
    tracker = StreamingTracker(model)
    window = [frame(i) for i in range(WINDOW)]
    tracker.add_object(Grounding(window, list(range(WINDOW)), list(SAMPLED), [mask(i) for i in SAMPLED]))
    del window
    times: dict[int, float] = {}
    cpu_times: dict[int, float] = {}
    rss_early = rss_end = 0.0
    for i in range(WINDOW, n):
        f = frame(i)
        t0, c0 = time.perf_counter(), time.process_time()
        tracker.step(f, i)
        times[i], cpu_times[i] = time.perf_counter() - t0, time.process_time() - c0
        if i + 1 == RSS_AT:
            gc.collect()
            rss_early = rss_mb()
    gc.collect()
    rss_end = rss_mb()
    out = _summary(times, rss_early, rss_end, n, cpu_times)
    out["stored_bytes"] = tracker.memory_stats(tracker.object_ids[0]).tensor_bytes
    return out


class LazyFrames:
    """``inference_state["images"]`` that preprocesses frame i when sam2 asks for it."""

    def __init__(self, n: int, image_size: int) -> None:
        self.n, self.image_size = n, image_size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        return sam2_pixels(frame(i), self.image_size)


def bench_offline(model, n: int) -> dict:
    size = model.image_size
    with tempfile.TemporaryDirectory() as folder:
        Image.fromarray(frame(0)).save(os.path.join(folder, "00000.jpg"))
        state = model.init_state(video_path=folder)
    state["images"] = LazyFrames(n, size)
    state["num_frames"] = n
    state["cached_features"] = {}
    state["video_height"] = state["video_width"] = size  # as Sa2VA's copy of sam2 does
    for i in SAMPLED:
        model.add_new_mask(state, i, 101, mask(i))
    times: dict[int, float] = {}
    rss_early = 0.0
    t0 = time.perf_counter()
    for fi, _, video_res in model.propagate_in_video(state):
        full = F.interpolate(video_res, size=(FRAME_H, FRAME_W), mode="bilinear", align_corners=False)
        (full[0, 0].sigmoid() > 0.5).numpy()
        t1 = time.perf_counter()
        times[fi] = t1 - t0
        if fi + 1 == RSS_AT:
            gc.collect()
            rss_early = rss_mb()
        t0 = time.perf_counter()
    gc.collect()
    rss_end = rss_mb()
    out = _summary(times, rss_early, rss_end, n)
    del state
    return out


def run(frames: int = 2000, out: dict | None = None) -> dict:
    """Run both benchmarks; adds ``streaming.*`` figures to ``out`` (and returns it)."""
    if frames < 2 * EARLY[1]:
        raise ValueError(f"frames must be >= {2 * EARLY[1]}")
    out = {} if out is None else out
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # steadier timings on a shared machine
    try:
        torch.manual_seed(0)
        model = build_sam2(TINY_SPEC)
        with torch.inference_mode():
            s = bench_streaming(model, frames)
            o = bench_offline(model, frames)
    finally:
        torch.set_num_threads(threads)
    out.update({
        "streaming.frames": frames,
        "streaming.time_ratio_late_early": s["time_ratio_late_early"],
        "streaming.cpu_time_ratio_late_early": s["cpu_time_ratio_late_early"],
        "streaming.rss_growth_mb": s["rss_growth_mb"],
        "streaming.ms_per_frame": s["ms_per_frame"],
        "streaming.ms_per_frame_early": s["ms_per_frame_early"],
        "streaming.ms_per_frame_late": s["ms_per_frame_late"],
        "streaming.stored_bytes": s["stored_bytes"],
        "streaming.offline_time_ratio_late_early": o["time_ratio_late_early"],
        "streaming.offline_rss_growth_mb": o["rss_growth_mb"],
        "streaming.offline_ms_per_frame": o["ms_per_frame"],
        "streaming.offline_ms_per_frame_early": o["ms_per_frame_early"],
        "streaming.offline_ms_per_frame_late": o["ms_per_frame_late"],
    })
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    args = parser.parse_args()
    print(json.dumps(run(args.frames), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
