"""The tracker's two preprocessing paths: cost per frame and the IoU of the masks they lead to (CPU).

* ``preprocess.pil_ms_640x480`` / ``device_ms_640x480``: one 640x480 frame to the
  1024 input, Sa2VA's exact PIL path and the device path (``device_pixels``), here
  run on the CPU tensors (no GPU on this project's machines: on a GPU the device
  path moves the resize off the CPU; not measured).
* ``preprocess.device_mask_iou_min`` / ``_mean``: per-frame IoU of the masks the
  tiny SAM 2.1 Hiera-T tracker (128 input, random weights, presence score shifted so
  that it sees the object) gives on a 40-frame stream with each path.

    python -m bench.bench_preprocess
"""

from __future__ import annotations

import json
import statistics
import time

import numpy as np
import torch

from bench.bench_tracker import frame, mask
from sa2va_i_ros.model.preprocess import sam2_pixels
from sa2va_i_ros.testing.tiny_trackers import build_tiny_tracker
from sa2va_i_ros.tracking import Grounding, StreamingTracker, TrackerConfig
from sa2va_i_ros.tracking.device_pixels import device_pixels

NAME = "sam2.1_hiera_t"
PRESENCE_SHIFT = 25.0


def run(out: dict | None = None, frames: int = 40) -> dict:
    """ms per frame of both paths at the real input size, and the masks' IoU on the tiny tracker."""
    out = {} if out is None else out
    f = frame(3)
    for key, fn in (("pil", lambda: sam2_pixels(f, 1024)),
                    ("device", lambda: device_pixels(f, 1024, torch.device("cpu")))):
        fn()
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        out[f"preprocess.{key}_ms_640x480"] = round(1e3 * statistics.median(times), 2)
    model, _ = build_tiny_tracker(NAME, seed=1)
    with torch.no_grad():  # random weights see no object anywhere: shift the presence score so that masks show
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.add_(PRESENCE_SHIFT)
    results = {}
    for key in ("pil", "device"):
        tracker = StreamingTracker(model, TrackerConfig(preprocess=key))
        window = [frame(i) for i in range(5)]
        tracker.add_object(Grounding(window, list(range(5)), [0, 2, 4], [mask(0), mask(2), mask(4)]), obj_id=1)
        results[key] = [tracker.step(frame(5 + i), i).objects[1].mask for i in range(frames)]
    ious = []
    for a, b in zip(results["pil"], results["device"], strict=True):
        union = np.logical_or(a, b).sum()
        ious.append(1.0 if union == 0 else float(np.logical_and(a, b).sum() / union))
    out["preprocess.device_mask_iou_min"] = round(min(ious), 4)
    out["preprocess.device_mask_iou_mean"] = round(float(np.mean(ious)), 4)
    out["preprocess.nonempty_frames"] = int(sum(m.any() for m in results["pil"]))
    out["preprocess.frames"] = frames
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=2, sort_keys=True))
