"""The five graphs exported from one SAM2: each is one of sam2's modules, called as sam2 calls it.

* ``image_encoder.onnx``: ``image_encoder`` + the original decoder's ``conv_s0`` /
  ``conv_s1`` (``SAM2Base.forward_image``): pixels (1, 3, S, S) -> backbone_fpn_0..2.
* ``memory_attention.onnx``: ``memory_attention`` (rotary in real arithmetic,
  ``rotary.py``): curr, curr_pos (HW, B, C); memory, memory_pos (F, HW, B, M);
  obj_ptrs, obj_ptrs_pos (P, B, M) -> pix_feat (HW, B, C).
* ``memory_encoder.onnx``: ``memory_encoder(pix_feat, masks, skip_mask_sigmoid=True)``:
  pix_feat (B, C, h, w), masks (B, 1, S, S) -> vision_features (B, M, h, w).
* ``mask_decoder.onnx``: ``sam_prompt_encoder`` (no prompt) + ``sam_mask_decoder.predict_masks``:
  image_embeddings (B, C, h, w), feat_s0, feat_s1 -> masks (B, 4, 4h, 4w),
  iou_pred (B, 4), mask_tokens (B, 4, C), object_score_logits (B, 1).
* ``mask_decoder_mask_prompt.onnx``: the same with a mask prompt (B, 1, 4h, 4w).

Dynamic axes: ``objects`` (B, every graph but the image encoder, which runs once
per frame with batch 1), ``memory_frames`` (F, spatial memories attended: prompts +
recent frames) and ``pointer_tokens`` (P, object-pointer tokens). Everything else
is fixed by the input size S (h = w = S/16, HW = h*w), as TensorRT prefers.

The mask decoder always outputs all four mask planes and IoU estimates
(``predict_masks``): the choice between the single mask, the three multimask
outputs and the dynamic stability fallback stays in sam2's ``MaskDecoder.forward``,
run in Python on the graph's outputs (``multimask_output`` is a Python flag that an
export would freeze). Positional encodings (constants of the input size) are not
outputs: the runtime takes them from sam2's own modules.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sa2va_i_ros.tracking.onnx.rotary import real_rotary_memory_attention

GRAPHS = ("image_encoder", "memory_attention", "memory_encoder", "mask_decoder", "mask_decoder_mask_prompt")
DYNAMIC_AXES = {
    "objects": "B: objects tracked together on one frame (memory attention, memory encoder, mask decoders)",
    "memory_frames": "F: spatial memories attended (prompt frames + recent frames), each HW tokens",
    "pointer_tokens": "P: object-pointer tokens (C / mem_dim tokens per pointer)",
}


@dataclass(frozen=True)
class Sizes:
    """The fixed sizes of one model's graphs."""

    image_size: int
    feat: int  # h = w of the top feature map
    hidden: int  # C
    mem_dim: int  # M
    levels: int  # backbone_fpn levels out of the image encoder
    high_res: bool  # the decoder takes feat_s0 / feat_s1

    @classmethod
    def of(cls, model) -> Sizes:
        with torch.no_grad():
            levels = len(model.image_encoder.neck.backbone_channel_list) - model.image_encoder.scalp
        return cls(int(model.image_size), int(model.sam_image_embedding_size), int(model.hidden_dim),
                   int(model.mem_dim), int(levels), bool(model.use_high_res_features_in_sam))

    @property
    def tokens(self) -> int:
        return self.feat * self.feat


class ImageEncoderGraph(nn.Module):
    """``SAM2Base.forward_image`` without positional encodings: backbone_fpn as the original decoder wants it."""

    def __init__(self, model) -> None:
        super().__init__()
        self.image_encoder = model.image_encoder
        self.decoder_convs = (model.sam_mask_decoder.conv_s0, model.sam_mask_decoder.conv_s1) \
            if model.use_high_res_features_in_sam else None

    def forward(self, pixels: torch.Tensor):
        fpn = list(self.image_encoder(pixels)["backbone_fpn"])
        if self.decoder_convs is not None:
            fpn[0] = self.decoder_convs[0](fpn[0])
            fpn[1] = self.decoder_convs[1](fpn[1])
        return tuple(fpn)


class MemoryAttentionGraph(nn.Module):
    """``memory_attention`` with the memory split into spatial frames and pointer tokens.

    sam2 passes one memory tensor and ``num_obj_ptr_tokens``; here both parts are
    inputs of their own so that every size is a shape (no data-dependent slicing).
    """

    def __init__(self, model, tokens: int) -> None:
        super().__init__()
        self.memory_attention = real_rotary_memory_attention(model.memory_attention, tokens)

    def forward(self, curr, curr_pos, memory, memory_pos, obj_ptrs, obj_ptrs_pos):
        frames, tokens, batch, dim = memory.shape
        mem = torch.cat([memory.reshape(frames * tokens, batch, dim), obj_ptrs], dim=0)
        pos = torch.cat([memory_pos.reshape(frames * tokens, batch, dim), obj_ptrs_pos], dim=0)
        return self.memory_attention(curr=curr, curr_pos=curr_pos, memory=mem, memory_pos=pos,
                                     num_obj_ptr_tokens=obj_ptrs.shape[0])


class MemoryEncoderGraph(nn.Module):
    """``memory_encoder`` as ``_encode_new_memory`` calls it (sigmoid already applied)."""

    def __init__(self, model) -> None:
        super().__init__()
        self.memory_encoder = model.memory_encoder

    def forward(self, pix_feat, masks):
        return self.memory_encoder(pix_feat, masks, skip_mask_sigmoid=True)["vision_features"]


class MaskDecoderGraph(nn.Module):
    """Prompt encoder (no clicks; a mask prompt or none) + ``predict_masks``: all four planes."""

    def __init__(self, model, mask_prompt: bool) -> None:
        super().__init__()
        self.prompt_encoder = model.sam_prompt_encoder
        self.decoder = model.sam_mask_decoder
        self.mask_prompt = mask_prompt
        self.high_res = bool(model.use_high_res_features_in_sam)

    def forward(self, image_embeddings, feat_s0=None, feat_s1=None, mask_prompt=None):
        batch = image_embeddings.shape[0]
        high_res = [feat_s0, feat_s1] if self.high_res else None
        masks = mask_prompt if self.mask_prompt else None
        # _forward_sam_heads without point inputs: one padding point of label -1
        coords = torch.zeros(batch, 1, 2, device=image_embeddings.device)
        labels = -torch.ones(batch, 1, dtype=torch.int32, device=image_embeddings.device)
        sparse, dense = self.prompt_encoder(points=(coords, labels), boxes=None, masks=masks)
        return self.decoder.predict_masks(
            image_embeddings=image_embeddings, image_pe=self.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, repeat_image=False,
            high_res_features=high_res)


@dataclass(frozen=True)
class GraphSpec:
    """A graph to export: its module, example inputs, names and dynamic axes."""

    name: str
    module: nn.Module
    inputs: tuple[torch.Tensor, ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic: tuple[dict[int, str], ...]  # per input: axis -> dynamic axis name


def graph_specs(model, names: tuple[str, ...] = GRAPHS) -> list[GraphSpec]:
    """The graphs of ``model`` (eval mode, float32, on cpu) with example inputs (batch 2, 2 frames, 8 pointers)."""
    z = Sizes.of(model)
    b, frames, ptrs = 2, 2, 8
    s, h, c, m = z.image_size, z.feat, z.hidden, z.mem_dim
    obj = {0: "objects"}
    specs = {}
    specs["image_encoder"] = lambda: GraphSpec(
        "image_encoder", ImageEncoderGraph(model), (torch.randn(1, 3, s, s),), ("pixels",),
        tuple(f"backbone_fpn_{i}" for i in range(z.levels)), ({},))
    specs["memory_attention"] = lambda: GraphSpec(
        "memory_attention", MemoryAttentionGraph(model, z.tokens),
        (torch.randn(z.tokens, b, c), torch.randn(z.tokens, b, c), torch.randn(frames, z.tokens, b, m),
         torch.randn(frames, z.tokens, b, m), torch.randn(ptrs, b, m), torch.randn(ptrs, b, m)),
        ("curr", "curr_pos", "memory", "memory_pos", "obj_ptrs", "obj_ptrs_pos"), ("pix_feat",),
        ({1: "objects"}, {1: "objects"}, {0: "memory_frames", 2: "objects"}, {0: "memory_frames", 2: "objects"},
         {0: "pointer_tokens", 1: "objects"}, {0: "pointer_tokens", 1: "objects"}))
    specs["memory_encoder"] = lambda: GraphSpec(
        "memory_encoder", MemoryEncoderGraph(model), (torch.randn(b, c, h, h), torch.rand(b, 1, s, s)),
        ("pix_feat", "masks"), ("vision_features",), (obj, obj))
    for prompt in (False, True):
        name = "mask_decoder_mask_prompt" if prompt else "mask_decoder"
        inputs = [torch.randn(b, c, h, h)]
        input_names = ["image_embeddings"]
        if z.high_res:
            inputs += [torch.randn(b, c // 8, 4 * h, 4 * h), torch.randn(b, c // 4, 2 * h, 2 * h)]
            input_names += ["feat_s0", "feat_s1"]
        if prompt:
            inputs.append(torch.randn(b, 1, 4 * h, 4 * h))
            input_names.append("mask_prompt")
        specs[name] = lambda prompt=prompt, name=name, inputs=inputs, input_names=input_names: GraphSpec(
            name, MaskDecoderGraph(model, prompt), tuple(inputs), tuple(input_names),
            ("masks", "iou_pred", "mask_tokens", "object_score_logits"), tuple(obj for _ in inputs))
    return [specs[n]() for n in names]
