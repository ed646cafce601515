"""Every call into sam2's modules, in one place, made exactly as the offline predictor makes them.

No SAM2 layer or attention is re-implemented: frames go through the image
encoder (``encode_image``) and the original decoder's ``conv_s0``/``conv_s1``
(``with_decoder_convs``), prompts and tracking through ``SAM2Base.track_step``,
prompt memories through ``SAM2Base._encode_new_memory``. What this module adds
is the bookkeeping sam2's ``SAM2VideoPredictor`` does around those calls
(bfloat16 memory storage, one shared ``maskmem_pos_enc``, the low-res round trip
of prompt masks before their memory is encoded).

Tracking frames are composed from sam2's own steps exactly as ``track_step``
composes them (memory conditioning, ``_forward_sam_heads``,
``_encode_memory_in_output``), with one difference: the memory attention of
several objects on the same frame runs as one batch. Each object's memory is
gathered by sam2's own ``_prepare_memory_conditioned_features`` (run on a view
of the model whose ``memory_attention`` only records its inputs); objects whose
memories have the same shape are then attended, decoded and memory-encoded
together, as sam2's predictor batches objects. One object is a batch of one.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sa2va_i_ros.model.preprocess import sam2_pixels
from sa2va_i_ros.model.sam2_model import encode_image, with_decoder_convs
from sa2va_i_ros.tracking.device_pixels import device_pixels
from sa2va_i_ros.tracking.fast import FastPaths, apply_channels_last, compiled_modules


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
    """Runs sam2's modules on one model, device and compute dtype.

    ``calls`` is what sam2's methods run on: the model itself (torch backend), or
    a view of it whose modules are exported graphs (``onnx.modules.backend_view``):
    the same sam2 code either way, only the module calls differ.
    """

    def __init__(self, model, dtype: torch.dtype, num_frames: int, fast: FastPaths | None = None,
                 calls=None, preprocess: str = "pil") -> None:
        if model.training:
            raise ValueError("the SAM2 model must be in eval mode (sam2 changes its memory rules in training)")
        if model.num_maskmem < 1:
            raise ValueError("a SAM2 without memory (num_maskmem = 0) cannot track")
        self.model = model
        self.device = model.device
        self.dtype = dtype
        self.num_frames = num_frames
        self.image_size = int(model.image_size)
        self.feat_size = int(model.sam_image_embedding_size)
        self.maskmem_pos_enc: list[torch.Tensor] | None = None  # constant, as inference_state["constants"]
        self.fast = fast or FastPaths()
        self.preprocess = preprocess
        self.calls = model if calls is None else calls
        if calls is None:
            apply_channels_last(model, self.fast)
            self._encoder, self._memory_attention = compiled_modules(model, self.fast)
        else:
            self._encoder, self._memory_attention = calls.image_encoder, calls.memory_attention

    def autocast(self):
        """Autocast on the model's device type for bf16/fp16; nothing for float32."""
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    # -- images -----------------------------------------------------------------------------
    def pixels(self, frame: np.ndarray) -> torch.Tensor:
        if self.preprocess == "device":
            return device_pixels(frame, self.image_size, self.device)
        return sam2_pixels(frame, self.image_size)

    def encode(self, pixels: torch.Tensor) -> dict:
        """Image encoder once; ``pixels`` (3, S, S) as ``inference_state["images"][i]``."""
        image = pixels.to(self.device).float().unsqueeze(0)
        if self.fast.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            raw = encode_image(self.model, image, self._encoder)
        if self.calls is not self.model:
            raw["convs"] = "original"  # the exported encoder applies the decoder's convs itself
        return raw

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
                convs = with_decoder_convs(raw, self.model.sam_mask_decoder)
                backbone_out = {"backbone_fpn": convs["backbone_fpn"], "vision_pos_enc": convs["vision_pos_enc"]}
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
        m = self.calls
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
        return self.track_many(feats, [(output_dict, frame_idx)])[0]

    def track_many(self, feats: FrameFeatures, jobs: list[tuple[dict, int]]) -> list[StepOutput]:
        """``track`` for several objects on one frame: ``jobs`` = [(output_dict, frame_idx), ...].

        Equal to tracking each alone (up to float rounding of batched kernels).
        """
        m = self.calls
        out: list[StepOutput | None] = [None] * len(jobs)
        with self.autocast():
            inputs = [self._memory_inputs(feats, od, t) for od, t in jobs]
            groups: dict[tuple, list[int]] = {}
            for k, rec in enumerate(inputs):
                groups.setdefault(rec.signature, []).append(k)
            for members in groups.values():
                batch = len(members)
                top = feats.vision_feats[-1]
                curr = top.expand(-1, batch, -1)
                curr_pos = feats.vision_pos_embeds[-1].expand(-1, batch, -1)
                memory = torch.cat([inputs[k].memory for k in members], dim=1)
                memory_pos = torch.cat([inputs[k].memory_pos for k in members], dim=1)
                pix = self._memory_attention(curr=[curr], curr_pos=[curr_pos], memory=memory, memory_pos=memory_pos,
                                             num_obj_ptr_tokens=inputs[members[0]].num_obj_ptr_tokens)
                h, w = feats.feat_sizes[-1]
                pix = pix.permute(1, 2, 0).view(batch, m.hidden_dim, h, w)
                # the rest of SAM2Base._track_step / track_step, batched over objects
                vision = [x.expand(-1, batch, -1) for x in feats.vision_feats]
                high_res = [x.permute(1, 2, 0).view(x.size(1), x.size(2), *s)
                            for x, s in zip(vision[:-1], feats.feat_sizes[:-1], strict=True)] or None
                _, _, _, low_res, high_res_masks, obj_ptr, scores = m._forward_sam_heads(
                    backbone_features=pix, point_inputs=None, mask_inputs=None, high_res_features=high_res,
                    multimask_output=m._use_multimask(False, None))
                current = {}
                m._encode_memory_in_output(vision, feats.feat_sizes, None, True, high_res_masks, scores, current)
                for b, k in enumerate(members):
                    one = slice(b, b + 1)
                    sliced = {"pred_masks": low_res[one], "obj_ptr": obj_ptr[one], "object_score_logits": scores[one]}
                    if batch > 1:  # own storage: a slice would keep the whole batch alive in memory
                        sliced = {key: v.clone() for key, v in sliced.items()}
                    memory_features = current["maskmem_features"][one]
                    out[k] = self._stored(sliced, memory_features if batch == 1 else memory_features.clone(),
                                          current["maskmem_pos_enc"])
        return out

    def _memory_inputs(self, feats: FrameFeatures, output_dict: dict, frame_idx: int) -> _MemoryInputs:
        """What sam2 attends to for this object on this frame, gathered by sam2 itself."""
        rec = _MemoryInputs()
        type(self.model)._prepare_memory_conditioned_features(
            _Recording(self.model, rec), frame_idx=frame_idx, is_init_cond_frame=False,
            current_vision_feats=feats.vision_feats[-1:], current_vision_pos_embeds=feats.vision_pos_embeds[-1:],
            feat_sizes=feats.feat_sizes[-1:], output_dict=output_dict, num_frames=self.num_frames,
            track_in_reverse=False)
        if rec.memory is None:
            raise RuntimeError("sam2 did not reach its memory attention on a tracked frame")
        return rec

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


class _MemoryInputs:
    """Stands in for ``memory_attention`` during gathering: keeps its inputs, returns ``curr``."""

    def __init__(self) -> None:
        self.memory = self.memory_pos = None
        self.num_obj_ptr_tokens = 0

    def __call__(self, curr, curr_pos, memory, memory_pos, num_obj_ptr_tokens=0):
        self.memory, self.memory_pos, self.num_obj_ptr_tokens = memory, memory_pos, int(num_obj_ptr_tokens)
        return curr[0]  # discarded: the real attention runs batched afterwards

    @property
    def signature(self) -> tuple:
        return (tuple(self.memory.shape), tuple(self.memory_pos.shape), self.memory.dtype, self.num_obj_ptr_tokens)


class _Recording:
    """The model as ``_prepare_memory_conditioned_features`` sees it, with a recording memory attention.

    A read-only view: the model itself is not changed, so other threads may use it meanwhile.
    """

    def __init__(self, model, recorder: _MemoryInputs) -> None:
        self.__dict__["_model"] = model
        self.__dict__["memory_attention"] = recorder

    def __getattr__(self, name):
        return getattr(self.__dict__["_model"], name)
