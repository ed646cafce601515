"""Image preprocessing exactly as Sa2VA's ``predict_forward`` does it.

Two paths, both squash the frame (no aspect-preserving letterbox):

* language model: PIL bicubic resize to 448x448, /255, ImageNet mean/std in
  float32 (torchvision ``Resize((448, 448), BICUBIC)``, ``ToTensor``,
  ``Normalize``);
* SAM2: PIL ``resize((S, S))`` with Pillow's default filter (bicubic for RGB),
  /255, then mean/std held as **bfloat16** tensors, as Sa2VA's
  ``SAM2.preprocess_image`` does whatever the compute dtype.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

MLLM_IMAGE_SIZE = 448
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The bfloat16 roundings of IMAGENET_MEAN / IMAGENET_STD (Sa2VA hf/sam2.py preprocess_image).
SAM2_MEAN_BF16 = (0.484375, 0.455078125, 0.40625)
SAM2_STD_BF16 = (0.228515625, 0.2236328125, 0.224609375)


def check_frame(frame: np.ndarray) -> np.ndarray:
    """Validate an RGB uint8 frame (H, W, 3) and return it C-contiguous."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 numpy arrays, got {type(frame).__name__}"
                         f"{'' if not isinstance(frame, np.ndarray) else ' of ' + str(frame.dtype)}")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"frames must be RGB arrays of shape (H, W, 3) with H, W > 0; got {frame.shape}")
    return np.ascontiguousarray(frame)


def mllm_pixels(frame: np.ndarray) -> torch.Tensor:
    """(3, 448, 448) float32 input of the vision tower for one RGB frame."""
    img = Image.fromarray(check_frame(frame), mode="RGB")
    img = img.resize((MLLM_IMAGE_SIZE, MLLM_IMAGE_SIZE), Image.BICUBIC)
    x = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()
    x = x.to(torch.float32).div(255)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32)[:, None, None]
    return x.sub_(mean).div_(std)


def sam2_pixels(frame: np.ndarray, image_size: int) -> torch.Tensor:
    """(3, S, S) float32 input of the SAM2 image encoder for one RGB frame."""
    img = Image.fromarray(check_frame(frame), mode="RGB")
    resized = np.array(img.resize((image_size, image_size)), dtype=np.uint8)
    x = torch.from_numpy(resized).permute(2, 0, 1).contiguous() / 255.0
    mean = torch.tensor(SAM2_MEAN_BF16, dtype=torch.bfloat16)[:, None, None]
    std = torch.tensor(SAM2_STD_BF16, dtype=torch.bfloat16)[:, None, None]
    x -= mean  # float32 op bfloat16 -> float32 with the bf16-rounded constants
    x /= std
    return x
