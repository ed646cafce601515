"""The device preprocessing path (``TrackerConfig.preprocess="device"``): close to PIL's, used only when chosen.

Its masks' IoU against the PIL path is a measurement (bench/bench_preprocess.py, README),
not asserted here; these tests check what the path computes and where it is used.
"""

from __future__ import annotations

import pytest
import torch
from test_tracker_helpers import make_frames, one_torch_thread  # noqa: F401  (autouse)

from sa2va_i_ros.model.preprocess import sam2_pixels
from sa2va_i_ros.testing.tiny_trackers import build_tiny_tracker
from sa2va_i_ros.tracking import StreamingTracker, TrackerConfig
from sa2va_i_ros.tracking.device_pixels import device_pixels


def test_device_pixels_are_close_to_pils():
    frame = make_frames(1, size=(480, 640))[0]
    ref = sam2_pixels(frame, 1024)
    out = device_pixels(frame, 1024, torch.device("cpu"))
    assert out.shape == ref.shape == (3, 1024, 1024) and out.dtype == torch.float32
    diff = (out - ref).abs()
    # both bicubic; PIL's filter support and rounding differ: about one grey level on average
    assert float(diff.mean()) < 0.02 and float(diff.max()) < 1.0
    levels = (out * torch.tensor([0.228515625, 0.2236328125, 0.224609375])[:, None, None]
              + torch.tensor([0.484375, 0.455078125, 0.40625])[:, None, None]) * 255
    assert float((levels - levels.round()).abs().max()) < 1e-3  # rounded to uint8 levels, as PIL's output


@pytest.mark.parametrize("preprocess", ["pil", "device"])
def test_the_tracker_uses_the_chosen_path(preprocess):
    model, _ = build_tiny_tracker("sam2.1_hiera_t")
    tracker = StreamingTracker(model, TrackerConfig(preprocess=preprocess))
    frame = make_frames(1)[0]
    want = sam2_pixels(frame, 128) if preprocess == "pil" else device_pixels(frame, 128, torch.device("cpu"))
    assert torch.equal(tracker.runner.pixels(frame), want)
    assert not torch.equal(sam2_pixels(frame, 128), device_pixels(frame, 128, torch.device("cpu")))


def test_an_unknown_path_is_refused():
    with pytest.raises(ValueError, match="preprocess must be"):
        TrackerConfig(preprocess="gpu")
