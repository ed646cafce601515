"""The 20 language-model images of SaSaSa2VA: per clip, its key frame and a 3x3 grid of the other nine.

``predict_forward`` (``modeling_sasasa2va_chat.py``): the key frame S[10c] goes
through the usual 448x448 bicubic squash and ImageNet normalisation; the other
nine frames are pasted at their original size into a 3W x 3H canvas, frame k at
row k // 3, column k % 3, and the canvas goes through the same transform. Order:
key0, grid0, key1, grid1, ..., key9, grid9.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from sa2va_i_ros.grounding.sasasa2va.modes import CLIP_LENGTH
from sa2va_i_ros.model.preprocess import check_frame

GRID_SIDE = 3


def grid_image(frames: Sequence[np.ndarray]) -> np.ndarray:
    """The 3W x 3H RGB canvas of nine (H, W, 3) frames, row-major."""
    if len(frames) != GRID_SIDE * GRID_SIDE:
        raise ValueError(f"a grid holds {GRID_SIDE * GRID_SIDE} frames, got {len(frames)}")
    height, width = check_frame(frames[0]).shape[:2]
    canvas = Image.new("RGB", (width * GRID_SIDE, height * GRID_SIDE))
    for k, frame in enumerate(frames):
        canvas.paste(Image.fromarray(check_frame(frame), mode="RGB"),
                     ((k % GRID_SIDE) * width, (k // GRID_SIDE) * height))
    return np.asarray(canvas)


def clip_images(frames: Sequence[np.ndarray], sampled: Sequence[int]) -> list[np.ndarray]:
    """key0, grid0, ..., key9, grid9 for the sampled indices (10 clips of 10)."""
    if len(sampled) % CLIP_LENGTH:
        raise ValueError(f"{len(sampled)} sampled frames do not make clips of {CLIP_LENGTH}")
    images = []
    for start in range(0, len(sampled), CLIP_LENGTH):
        clip = [frames[i] for i in sampled[start:start + CLIP_LENGTH]]
        images += [check_frame(clip[0]), grid_image(clip[1:])]
    return images
