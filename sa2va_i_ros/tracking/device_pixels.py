"""The tracker's frame preprocessing on its own device (``TrackerConfig.preprocess="device"``; off by default).

The default path is Sa2VA's exactly: PIL's bicubic resize of the uint8 frame to
S x S on the CPU (``preprocess.sam2_pixels``). On a GPU that resize and the
upload of a float S x S image cost more than uploading the camera frame itself,
so this path uploads the uint8 frame from pinned memory (non-blocking), then
resizes (bicubic with antialiasing, rounded to uint8 levels like PIL's output)
and normalises on the device. Nothing waits for the device here: the only
synchronisation of a live frame stays the mask read-back. PIL's filter support
and rounding differ slightly from torch's, so the pixels are not identical;
the masks' IoU against the PIL path is measured in ``bench/bench_onnx.py`` and
written in the README. On a CPU the same code runs on the CPU tensors.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from sa2va_i_ros.model.preprocess import SAM2_MEAN_BF16, SAM2_STD_BF16, check_frame


def device_pixels(frame: np.ndarray, image_size: int, device: torch.device) -> torch.Tensor:
    """(3, S, S) float32 on ``device``: the frame resized and normalised there."""
    host = torch.from_numpy(check_frame(frame))
    if device.type == "cuda":
        host = host.pin_memory()
    x = host.to(device, non_blocking=True).permute(2, 0, 1).unsqueeze(0).float()
    x = F.interpolate(x, size=(image_size, image_size), mode="bicubic", align_corners=False, antialias=True)
    x = x.round_().clamp_(0, 255).div_(255.0)[0]
    mean = torch.tensor(SAM2_MEAN_BF16, dtype=torch.float32, device=device)[:, None, None]
    std = torch.tensor(SAM2_STD_BF16, dtype=torch.float32, device=device)[:, None, None]
    return x.sub_(mean).div_(std)
