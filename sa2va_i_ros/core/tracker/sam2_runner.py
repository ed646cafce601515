"""Every call into sam2's modules, in one place, made exactly as the offline predictor makes them.

No SAM2 layer or attention is re-implemented: frames go through the image
encoder (``encode_image``) and the original decoder's ``conv_s0``/``conv_s1``
(``with_decoder_convs``), prompts and tracking through ``SAM2Base.track_step``,
prompt memories through ``SAM2Base._encode_new_memory``. What this module adds
is the bookkeeping sam2's ``SAM2VideoPredictor`` does around those calls
(bfloat16 memory storage, one shared ``maskmem_pos_enc``, the low-res round trip
of prompt masks before their memory is encoded).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sa2va_i_ros.core.preprocess import sam2_pixels
from sa2va_i_ros.core.sam2_model import encode_image, with_decoder_convs


@dataclass(frozen=True)
class FrameFeatures:
    """One frame's flattened features, as ``_get_image_feature`` returns them (batch 1)."""

    vision_feats: list[torch.Tensor]
    vision_pos_embeds: list[torch.Tensor]
    feat_sizes: list[tuple[int, int]]


@dataclass(frozen=True)
class StepOutput:
    """``track_step``'s result reduced to what is stored (``entry``) and what is shown."""

    entry: dict  # maskmem_features (bf16), maskmem_pos_enc (shared), obj_ptr, object_score_logits
    low_res_logits: torch.Tensor  # (1, 1, S/4, S/4) float32


class Sam2Runner:
    """Runs sam2's modules on one model, device and compute dtype."""

    def __init__(self, model, dtype: torch.dtype, num_frames: int) -> None:
        if model.training:
            raise ValueError("the SAM2 model must be in eval mode (sam2 changes its memory rules in training)")
        self.model = model
        self.device = model.device
        self.dtype = dtype
        self.num_frames = num_frames
        self.image_size = int(model.image_size)
        self.feat_size = int(model.sam_image_embedding_size)
        self.maskmem_pos_enc: list[torch.Tensor] | None = None  # constant, as inference_state["constants"]

    def autocast(self):
        """Autocast on the model's device type for bf16/fp16; nothing for float32."""
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    # -- images -----------------------------------------------------------------------------
    def pixels(self, frame: np.ndarray) -> torch.Tensor:
        return sam2_pixels(frame, self.image_size)

    def encode(self, pixels: torch.Tensor) -> dict:
        """Image encoder once; ``pixels`` (3, S, S) as ``inference_state["images"][i]``."""
        image = pixels.to(self.device).float().unsqueeze(0)
        with self.autocast():
            return encode_image(self.model, image)

    def features(self, raw: dict) -> FrameFeatures:
        """Encoder output -> the original decoder's flattened features.

        ``raw`` is ``encode_image``'s output, or (with ``raw["convs"] == "original"``)
        one already passed through the original decoder's convolutions, as the
        grounding engine hands it over.

        In float32 mode, features computed elsewhere in a lower precision are cast
        up; for exact reuse they should come from the same dtype as the tracker's.
        """
        with self.autocast():
            if raw.get("convs") == "original":
                backbone_out = {"backbone_fpn": list(raw["backbone_fpn"]),
                                "vision_pos_enc": list(raw["vision_pos_enc"])}
            elif self.model.use_high_res_features_in_sam:
                backbone_out = with_decoder_convs(raw, self.model.sam_mask_decoder)
            else:
                backbone_out = {"backbone_fpn": list(raw["backbone_fpn"]),
                                "vision_pos_enc": list(raw["vision_pos_enc"])}
            if self.dtype == torch.float32:
                backbone_out = {k: [t.float() for t in v] for k, v in backbone_out.items()}
            _, feats, pos, sizes = self.model._prepare_backbone_features(backbone_out)
        return FrameFeatures(feats, pos, sizes)

    # -- sam2 steps -------------------------------------------------------------------------
    def prompt(self, feats: FrameFeatures, mask_input: torch.Tensor, frame_idx: int) -> StepOutput:
        """A conditioning frame: ``add_new_mask`` then ``propagate_in_video_preflight``.

        The output is the mask itself (``use_mask_input_as_output_without_sam``);
        its memory is encoded from the low-res output upsampled to (S, S), not from
        the prompt, exactly as the preflight does.
        """
        m = self.model
        with self.autocast():
            out = m.track_step(
                frame_idx=frame_idx, is_init_cond_frame=True, current_vision_feats=feats.vision_feats,
                current_vision_pos_embeds=feats.vision_pos_embeds, feat_sizes=feats.feat_sizes,
                point_inputs=None, mask_inputs=mask_input,
                output_dict={"cond_frame_outputs": {}, "non_cond_frame_outputs": {}},
                num_frames=self.num_frames, track_in_reverse=False, run_mem_encoder=False,
            )
            high_res = F.interpolate(out["pred_masks"].to(self.device), size=(self.image_size, self.image_size),
                                     mode="bilinear", align_corners=False)
            maskmem_features, maskmem_pos_enc = m._encode_new_memory(
                current_vision_feats=feats.vision_feats, feat_sizes=feats.feat_sizes,
                pred_masks_high_res=high_res, object_score_logits=out["object_score_logits"],
                is_mask_from_pts=True,
            )
        return self._stored(out, maskmem_features, maskmem_pos_enc)

    def track(self, feats: FrameFeatures, output_dict: dict, frame_idx: int) -> StepOutput:
        """A non-conditioning frame: ``_run_single_frame_inference`` as ``propagate_in_video`` calls it."""
        with self.autocast():
            out = self.model.track_step(
                frame_idx=frame_idx, is_init_cond_frame=False, current_vision_feats=feats.vision_feats,
                current_vision_pos_embeds=feats.vision_pos_embeds, feat_sizes=feats.feat_sizes,
                point_inputs=None, mask_inputs=None, output_dict=output_dict, num_frames=self.num_frames,
                track_in_reverse=False, run_mem_encoder=True,
            )
        return self._stored(out, out["maskmem_features"], out["maskmem_pos_enc"])

    def _stored(self, out: dict, maskmem_features, maskmem_pos_enc) -> StepOutput:
        if self.maskmem_pos_enc is None:
            self.maskmem_pos_enc = [x[0:1].clone() for x in maskmem_pos_enc]
        entry = {
            "maskmem_features": maskmem_features.to(torch.bfloat16),
            "maskmem_pos_enc": self.maskmem_pos_enc,
            "obj_ptr": out["obj_ptr"],
            "object_score_logits": out["object_score_logits"],
        }
        return StepOutput(entry, out["pred_masks"].float())
