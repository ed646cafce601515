"""SaSaSa2VA's SAM2 calls: a language prompt on one frame, gated by the object score, and its memory.

SaSaSa2VA's ``add_language_embd`` runs ``track_step`` on a fresh initial
conditioning frame: features plus ``no_mem_embed`` (no memory), two padding
points plus the language token, multimask with the best predicted IoU kept,
and, unlike Sa2VA and Sa2VA-i, ``NO_OBJ_SCORE`` gating ON (its ``sam2.py``
marks it "HACK"): where the object-score logit is <= 0 the mask logits become
-1024, an empty mask. The object pointer is made from the kept mask's token
exactly as SAM2's ``_forward_sam_heads`` makes it. There is one decoder: the
checkpoint's (re-finetuned) ``sam_mask_decoder`` both prompts and tracks.

Before propagating, the offline predictor encodes each prompted frame's memory
from its low-resolution logits upsampled to SAM2's input size
(``_consolidate_temp_output_across_obj`` with ``run_mem_encoder=True``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sa2va_i_ros.grounding.sasasa2va import modes
from sa2va_i_ros.model.device import autocast
from sa2va_i_ros.model.seg_decode import decode_language
from sa2va_i_ros.tracking.sam2_runner import FrameFeatures

NO_OBJ_SCORE = -1024.0  # SAM2's placeholder logit for "no object"


@dataclass
class PromptOutput:
    """One language prompt on B copies of a frame (one per [SEG] embedding)."""

    low_res: torch.Tensor  # (B, 1, S/4, S/4) float32 logits, gated
    object_scores: torch.Tensor  # (B, 1) object-score logits
    obj_ptr: torch.Tensor  # (B, C) object pointer


def gate(low_res: torch.Tensor, object_scores: torch.Tensor) -> torch.Tensor:
    """Logits where the object-score logit is > 0, ``NO_OBJ_SCORE`` elsewhere."""
    return torch.where(object_scores[:, :, None, None] > 0, low_res, NO_OBJ_SCORE)


def object_pointer(sam2, token: torch.Tensor, object_scores: torch.Tensor) -> torch.Tensor:
    """``obj_ptr_proj`` of the kept token, mixed with ``no_obj_ptr`` by the object score (SAM2's rule)."""
    ptr = sam2.obj_ptr_proj(token)
    if sam2.pred_obj_scores:
        appearing = object_scores.sigmoid() if sam2.soft_no_obj_ptr else (object_scores > 0).float()
        if sam2.fixed_no_obj_ptr:
            ptr = appearing * ptr
        ptr = ptr + (1 - appearing) * sam2.no_obj_ptr
    return ptr


def expand(feats: FrameFeatures, batch: int) -> FrameFeatures:
    """The features of one frame repeated for ``batch`` prompts."""
    if batch == 1:
        return feats
    return FrameFeatures([x.expand(-1, batch, -1) for x in feats.vision_feats],
                         [x.expand(-1, batch, -1) for x in feats.vision_pos_embeds], feats.feat_sizes)


def language_prompt(sam2, feats: FrameFeatures, language: torch.Tensor) -> PromptOutput:
    """``language`` (B, C) [SEG] embeddings, each decoded alone on the frame of ``feats`` (batch 1)."""
    batch = language.shape[0]
    wide = expand(feats, batch)
    out = decode_language(sam2, sam2.sam_mask_decoder, wide.vision_feats, wide.feat_sizes, language[:, None])
    scores = out.object_scores.float()
    ptr = object_pointer(sam2, out.token, out.object_scores)
    return PromptOutput(gate(out.low_res, scores), scores, ptr)


def prompt_memory(sam2, feats: FrameFeatures, prompt: PromptOutput) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Memory of a prompted frame (batch 1), as ``propagate_in_video_preflight`` encodes it."""
    size = int(sam2.image_size)
    high_res = F.interpolate(prompt.low_res, size=(size, size), mode="bilinear", align_corners=False)
    features, pos = sam2._encode_new_memory(current_vision_feats=feats.vision_feats, feat_sizes=feats.feat_sizes,
                                            pred_masks_high_res=high_res,
                                            object_score_logits=prompt.object_scores, is_mask_from_pts=True)
    return features.to(torch.bfloat16), pos


def to_image_size(low_res: torch.Tensor, image_size: int) -> torch.Tensor:
    """Low-res logits -> SAM2's input size (the official 'video resolution'), bilinear."""
    return F.interpolate(low_res.float(), size=(image_size, image_size), mode="bilinear", align_corners=False)


def to_frame(logits: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, 1, S, S) logits -> bool (B, H, W): bilinear to the frame, sigmoid > 0.5."""
    up = F.interpolate(logits.float(), size=(height, width), mode="bilinear", align_corners=False)
    return up[:, 0].sigmoid() > 0.5

def clip_prompts(seg_embeddings: torch.Tensor) -> torch.Tensor:
    """Ten clip prompts from the answer's [SEG] embeddings (first ten, or the last repeated)."""
    n = seg_embeddings.shape[0]
    if n >= modes.NUM_CLIPS:
        return seg_embeddings[: modes.NUM_CLIPS]
    return torch.cat([seg_embeddings, seg_embeddings[-1:].expand(modes.NUM_CLIPS - n, -1)])


def decode_frame(sam2, feats, clips: torch.Tensor, frame_clips: list[int], engine):
    """One frame decoded at its plan positions (``frame_clips``: the clip of each, duplicates too).

    ``engine``: its device and dtype (autocast). Returns the prompt output (one row per
    distinct clip), the logits at SAM2's input size (1, 1, S, S) and the presence score. Several positions
    (uniform_plus / q_frame, T < 100): the mean of their logits and scores.
    """
    unique = sorted(set(frame_clips))
    weights = torch.tensor([frame_clips.count(c) / len(frame_clips) for c in unique], device=clips.device)
    with autocast(engine.device, engine.dtype):
        out = language_prompt(sam2, feats, clips[unique])
    logits = (to_image_size(out.low_res, int(sam2.image_size)) * weights[:, None, None, None]).sum(
        dim=0, keepdim=True)
    return out, logits, float((out.object_scores.sigmoid()[:, 0] * weights).sum())
