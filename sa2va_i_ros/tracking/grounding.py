"""The input of a new track: what the language model grounded, checked before any work.

Everything is validated up front so that a bad grounding raises a ``ValueError``
before the tracker touches its state (other objects are never affected).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sa2va_i_ros.model.preprocess import check_frame


@dataclass(frozen=True, eq=False)
class Grounding:
    """A grounding result over a buffered window of frames.

    * ``frames``: the window the language model sampled from, RGB uint8 (H, W, 3),
      oldest first; all of one size.
    * ``stamps``: one opaque object per frame, carried into the outputs.
    * ``sampled_indices``: indices into ``frames``, in the order the masks were
      produced (duplicates allowed: a later mask for the same frame overwrites
      the earlier one, as repeated ``add_new_mask`` calls do).
    * ``masks``: one bool (H, W) mask per sampled index.
    * ``raw_features``: optional ``sam2_model.encode_image`` output (batch 1) per
      sampled index (None where absent), so the image encoder is not run again.
      They must come from the tracker's own SAM2 (features that name another
      encoder are refused: a tracker running another model encodes the frames itself).
    * ``pixels``: optional (3, S, S) ``preprocess.sam2_pixels`` tensor per sampled
      index (None where absent), so the frame is not preprocessed again.
    """

    frames: Sequence[np.ndarray]
    stamps: Sequence[Any]
    sampled_indices: Sequence[int]
    masks: Sequence[np.ndarray | torch.Tensor]
    raw_features: Sequence[dict | None] | None = None
    pixels: Sequence[torch.Tensor | None] | None = None


@dataclass(frozen=True)
class CheckedGrounding:
    """A validated grounding: prompts chosen by policy, precomputed inputs by window index."""

    frames: list[np.ndarray]
    stamps: list[Any]
    frame_size: tuple[int, int]
    prompts: dict[int, np.ndarray]  # window index -> bool mask, in sam2 insertion order
    raw_features: dict[int, dict]
    pixels: dict[int, torch.Tensor]

    @property
    def first_prompt(self) -> int:
        return min(self.prompts)


def check_grounding(g: Grounding, image_size: int, feat_size: int, policy: str,
                    max_prompt_frames: int, encoder=None) -> CheckedGrounding:
    """Validate ``g`` (``feat_size``: side of SAM2's top feature map, S / 16; ``encoder``: the tracker's)."""
    frames = [check_frame(f) for f in g.frames]
    if not frames:
        raise ValueError("grounding has no frames")
    size = frames[0].shape[:2]
    for i, f in enumerate(frames):
        if f.shape[:2] != size:
            raise ValueError(f"grounding frames differ in size: frame 0 is {size}, frame {i} is {f.shape[:2]}")
    stamps = list(g.stamps)
    if len(stamps) != len(frames):
        raise ValueError(f"grounding has {len(frames)} frames but {len(stamps)} stamps")
    indices = list(g.sampled_indices)
    masks = list(g.masks)
    if not indices:
        raise ValueError("grounding has no prompts (sampled_indices is empty)")
    if len(masks) != len(indices):
        raise ValueError(f"grounding has {len(indices)} sampled indices but {len(masks)} masks")
    for idx in indices:
        if isinstance(idx, bool) or not isinstance(idx, int | np.integer) or not 0 <= idx < len(frames):
            raise ValueError(f"sampled index {idx!r} is not an index into the {len(frames)} frames")
    checked_masks = [_check_mask(m, size, k) for k, m in enumerate(masks)]

    prompts: dict[int, np.ndarray] = {}
    for idx, mask in zip(indices, checked_masks, strict=True):
        prompts[int(idx)] = mask  # a repeated index keeps its first position, takes the last mask
    if policy == "first":
        first = min(prompts)
        prompts = {first: prompts[first]}
    if len(prompts) > max_prompt_frames:
        raise ValueError(f"{len(prompts)} distinct prompted frames exceed max_prompt_frames={max_prompt_frames}")

    raw = _per_index(g.raw_features, indices, "raw_features", lambda v: _check_raw(v, feat_size, encoder))
    pixels = _per_index(g.pixels, indices, "pixels", lambda v: _check_pixels(v, image_size))
    return CheckedGrounding(frames, stamps, size, prompts, raw, pixels)


def _check_mask(mask, size: tuple[int, int], k: int) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
        raise ValueError(f"mask {k} must be a bool array, got {getattr(mask, 'dtype', type(mask).__name__)}")
    if mask.shape != tuple(size):
        raise ValueError(f"mask {k} has shape {mask.shape}, the frames are {tuple(size)}")
    return mask


def _per_index(values, indices: list[int], name: str, check) -> dict[int, Any]:
    if values is None:
        return {}
    values = list(values)
    if len(values) != len(indices):
        raise ValueError(f"{name} has {len(values)} entries for {len(indices)} sampled indices")
    out: dict[int, Any] = {}
    for idx, value in zip(indices, values, strict=True):
        if value is not None and int(idx) not in out:
            out[int(idx)] = check(value)
    return out


def _check_pixels(p, image_size: int) -> torch.Tensor:
    if not isinstance(p, torch.Tensor) or tuple(p.shape) != (3, image_size, image_size):
        raise ValueError(f"pixels must be (3, {image_size}, {image_size}) tensors, got "
                         f"{tuple(p.shape) if isinstance(p, torch.Tensor) else type(p).__name__}")
    return p


def _check_raw(raw, feat_size: int, encoder=None) -> dict:
    ok = isinstance(raw, dict) and isinstance(raw.get("backbone_fpn"), list | tuple) \
        and isinstance(raw.get("vision_pos_enc"), list | tuple) and len(raw["backbone_fpn"]) > 0 \
        and len(raw["backbone_fpn"]) == len(raw["vision_pos_enc"])
    if not ok:
        raise ValueError("raw_features must be encode_image outputs: {'backbone_fpn': [...], 'vision_pos_enc': [...]}")
    top = raw["backbone_fpn"][-1]
    if top.dim() != 4 or top.shape[0] != 1 or tuple(top.shape[-2:]) != (feat_size, feat_size):
        raise ValueError(f"raw_features must be of batch 1 with a {feat_size}x{feat_size} top level; got "
                         f"{tuple(top.shape)}")
    source = raw.get("encoder")
    if encoder is not None and source is not None and source is not encoder:
        raise ValueError("raw_features come from another SAM2 image encoder than the tracker's (a tracker "
                         "model other than the checkpoint's encodes the frames itself: pass no raw_features)")
    return raw
