"""Stand-ins for sam2's modules that run the exported graphs; sam2's own code calls them.

Each has the call signature of the module it replaces and returns what that
module returns, so ``Sam2Runner`` runs sam2's ``track_step``,
``_forward_sam_heads`` and ``_encode_new_memory`` unchanged on a ``ModuleView``
of the model (``backend_view``). Positional encodings, which are constants of
the input size, come from sam2's own encoders (cached by sam2).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sa2va_i_ros.tracking.onnx.session import OrtGraph
from sa2va_i_ros.tracking.onnx.view import ModuleView


class OnnxImageEncoder:
    """``image_encoder(pixels)`` -> backbone_fpn (already through the original decoder's convs) and pos encodings."""

    def __init__(self, graph: OrtGraph, image_encoder) -> None:
        self.graph = graph
        self.position_encoding = image_encoder.neck.position_encoding

    def __call__(self, pixels: torch.Tensor) -> dict:
        fpn = self.graph(pixels=pixels)
        pos = [self.position_encoding(x).to(x.dtype) for x in fpn]  # depends on the shape only
        return {"backbone_fpn": fpn, "vision_pos_enc": pos}


class OnnxMemoryAttention:
    """``memory_attention(curr, curr_pos, memory, memory_pos, num_obj_ptr_tokens)``."""

    def __init__(self, graph: OrtGraph, tokens: int) -> None:
        self.graph = graph
        self.tokens = tokens

    def __call__(self, curr, curr_pos, memory, memory_pos, num_obj_ptr_tokens: int = 0) -> torch.Tensor:
        if isinstance(curr, list):
            (curr,), (curr_pos,) = curr, curr_pos
        spatial = memory.shape[0] - int(num_obj_ptr_tokens)
        batch, dim = memory.shape[1], memory.shape[2]
        (out,) = self.graph(curr=curr, curr_pos=curr_pos,
                            memory=memory[:spatial].reshape(-1, self.tokens, batch, dim),
                            memory_pos=memory_pos[:spatial].reshape(-1, self.tokens, batch, dim),
                            obj_ptrs=memory[spatial:], obj_ptrs_pos=memory_pos[spatial:])
        return out


class OnnxMemoryEncoder:
    """``memory_encoder(pix_feat, masks, skip_mask_sigmoid)`` -> vision_features and their pos encoding."""

    def __init__(self, graph: OrtGraph, memory_encoder) -> None:
        self.graph = graph
        self.position_encoding = memory_encoder.position_encoding

    def __call__(self, pix_feat, masks, skip_mask_sigmoid: bool = False) -> dict:
        if not skip_mask_sigmoid:
            masks = torch.sigmoid(masks)
        (x,) = self.graph(pix_feat=pix_feat, masks=masks)
        return {"vision_features": x, "vision_pos_enc": [self.position_encoding(x).to(x.dtype)]}


@dataclass(frozen=True)
class _Prompt:
    """What the prompt encoder was asked to embed; the decoder graph embeds it."""

    masks: torch.Tensor | None


class OnnxPromptEncoder:
    """``sam_prompt_encoder(points, boxes, masks)``: hands the prompt to the decoder graph (which embeds it)."""

    def __init__(self, prompt_encoder) -> None:
        self.mask_input_size = prompt_encoder.mask_input_size

    def __call__(self, points, boxes, masks):
        _, labels = points
        if boxes is not None or bool((labels != -1).any()):
            raise NotImplementedError("the exported decoder takes mask prompts only (the tracker never clicks)")
        return _Prompt(masks), None

    def get_dense_pe(self):
        return None  # a constant inside the decoder graph


class OnnxDecoderCalls:
    """``predict_masks`` of the mask decoder: all four planes from the graph for the prompt's kind."""

    def __init__(self, plain: OrtGraph, mask_prompt: OrtGraph, high_res: bool) -> None:
        self.plain, self.mask_prompt, self.high_res = plain, mask_prompt, high_res

    def predict_masks(self, image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings,
                      repeat_image, high_res_features=None):
        if repeat_image:
            raise NotImplementedError("the exported decoder takes one image per prompt (repeat_image=False)")
        feeds = {"image_embeddings": image_embeddings}
        if self.high_res:
            feeds["feat_s0"], feeds["feat_s1"] = high_res_features
        masks = sparse_prompt_embeddings.masks
        if masks is None:
            return tuple(self.plain(**feeds))
        return tuple(self.mask_prompt(**feeds, mask_prompt=masks))


@dataclass
class OnnxGraphs:
    """The five loaded graphs of one model."""

    image_encoder: OrtGraph
    memory_attention: OrtGraph
    memory_encoder: OrtGraph
    mask_decoder: OrtGraph
    mask_decoder_mask_prompt: OrtGraph

    @property
    def providers(self) -> list[str]:
        return self.image_encoder.providers


def backend_view(model, graphs: OnnxGraphs) -> ModuleView:
    """``model`` as sam2's methods see it with every exported module replaced by its graph."""
    tokens = int(model.sam_image_embedding_size) ** 2
    decoder = ModuleView(model.sam_mask_decoder, predict_masks=OnnxDecoderCalls(
        graphs.mask_decoder, graphs.mask_decoder_mask_prompt, bool(model.use_high_res_features_in_sam)).predict_masks)
    return ModuleView(
        model,
        image_encoder=OnnxImageEncoder(graphs.image_encoder, model.image_encoder),
        memory_attention=OnnxMemoryAttention(graphs.memory_attention, tokens),
        memory_encoder=OnnxMemoryEncoder(graphs.memory_encoder, model.memory_encoder),
        sam_prompt_encoder=OnnxPromptEncoder(model.sam_prompt_encoder),
        sam_mask_decoder=decoder,
    )
