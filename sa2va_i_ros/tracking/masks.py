"""Mask resizing in and out of SAM2, exactly where sam2's predictor and Sa2VA resize.

Both directions must match the offline pipeline bit for bit: the prompt goes in
as ``SAM2VideoPredictor.add_new_mask`` resizes it, and the output comes out
through the predictor's low-res -> (S, S) resize (Sa2VA sets video size = S)
followed by Sa2VA's (S, S) -> (H, W) resize and ``sigmoid > 0.5``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def prompt_mask_input(mask: np.ndarray, image_size: int, device: torch.device) -> torch.Tensor:
    """(1, 1, S, S) float {0, 1} prompt, as ``add_new_mask`` builds ``mask_inputs``."""
    m = torch.tensor(mask, dtype=torch.bool)[None, None].float().to(device)
    if m.shape[-2:] != (image_size, image_size):
        m = F.interpolate(m, size=(image_size, image_size), align_corners=False, mode="bilinear",
                          antialias=True)
        m = (m >= 0.5).float()
    return m


def video_res_logits(low_res: torch.Tensor, image_size: int) -> torch.Tensor:
    """low-res logits -> (1, 1, S, S): ``_get_orig_video_res_output`` with video size S."""
    low_res = low_res.float()
    if low_res.shape[-2:] == (image_size, image_size):
        return low_res
    return F.interpolate(low_res, size=(image_size, image_size), mode="bilinear", align_corners=False)


def frame_mask(low_res: torch.Tensor, image_size: int, frame_size: tuple[int, int]) -> np.ndarray:
    """Bool (H, W) mask at the frame's size, as Sa2VA thresholds its propagated masks."""
    video_res = video_res_logits(low_res, image_size)
    full = F.interpolate(video_res, size=frame_size, mode="bilinear", align_corners=False)
    return (full[0, 0].sigmoid() > 0.5).cpu().numpy()
