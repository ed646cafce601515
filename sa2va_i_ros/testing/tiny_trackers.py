"""Tiny random-weight versions of sam2's released models, built offline (tests, demo).

Each keeps everything its config sets except the sizes: SAM 2.1's object-pointer
temporal encoding and no-object spatial embedding, Hiera-L's window sizes, the
memory and multimask settings. The four sizes differ in depth, so weights of one
do not load into another. ``write_tiny_tracker_weights`` writes a file in sam2's
official layout (or safetensors) that ``models.load_tracker_model`` reads back
through the product path; its sizes travel in the file.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from sa2va_i_ros.model.sam2_model import Sam2Spec
from sa2va_i_ros.testing.tiny_sa2va import TINY_SAM2
from sa2va_i_ros.tracking.models import TRACKER_MODELS, build_tracker_model, save_weights

# Hiera depth per size (stages, global-attention blocks, heads), tiny; window sizes as the configs
# (Hiera's default (8, 4, 14, 7) for t/s/b+, (8, 4, 16, 8) for l).
_TRUNKS = {
    "t": dict(stages=(1, 1, 2, 1), global_att_blocks=(3,), num_heads=1, window_spec=(8, 4, 14, 7)),
    "s": dict(stages=(1, 1, 3, 1), global_att_blocks=(3, 4), num_heads=1, window_spec=(8, 4, 14, 7)),
    "b+": dict(stages=(1, 2, 3, 1), global_att_blocks=(4, 5), num_heads=2, window_spec=(8, 4, 14, 7)),
    "l": dict(stages=(1, 2, 4, 1), global_att_blocks=(4, 5, 6), num_heads=2, window_spec=(8, 4, 16, 8)),
}


def tiny_tracker_spec(name: str, image_size: int = 128) -> Sam2Spec:
    """Sizes of the tiny version of ``name`` (the tiny checkpoints' SAM2 widths, the size's own depth)."""
    size = TRACKER_MODELS[name].size
    return dataclasses.replace(TINY_SAM2, image_size=image_size, **_TRUNKS[size])


def build_tiny_tracker(name: str, seed: int = 0, image_size: int = 128) -> tuple[torch.nn.Module, Sam2Spec]:
    """The tiny version of ``name`` with random weights (seeded), eval mode, and its sizes."""
    spec = tiny_tracker_spec(name, image_size)
    torch.manual_seed(seed)
    return build_tracker_model(name, spec), spec


def write_tiny_tracker_weights(name: str, path: str | Path, seed: int = 0, image_size: int = 128) -> Path:
    """A weights file of the tiny version of ``name`` (``.pt`` as sam2 ships them, or ``.safetensors``)."""
    model, spec = build_tiny_tracker(name, seed, image_size)
    return save_weights(model, path, spec)
