"""Official Sa2VA tensor names -> our modules' parameter names.

The official files store ``Sa2VAChatModel.state_dict()`` with ``mllm.model.``
removed and ``.gamma`` renamed ``.g_weight`` (Sa2VA's convert_to_hf.py). We host
the vision tower and projector in transformers' native InternVL classes (renames
from transformers' own InternVL conversion script; the fused ``attn.qkv`` is split
into q/k/v), the language model in its native class (names unchanged), and SAM2 in
the ``sam2`` package's modules (``g_weight`` back to ``gamma``). Sa2VA-i files hold
both SAM2 mask decoders: ``sam_mask_decoder`` (original SAM 2.0) and
``sam_mask_decoder_modified`` (Sa2VA-finetuned); in a plain Sa2VA file
``sam_mask_decoder`` is the finetuned one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from sa2va_i_ros.model.checkpoint import internlm2
from sa2va_i_ros.model.checkpoint.stream import Piece

SAM2_PREFIX = "grounding_encoder.sam2_model."
MODIFIED_DECODER = SAM2_PREFIX + "sam_mask_decoder_modified."
SAM2_DECODER = SAM2_PREFIX + "sam_mask_decoder."

_VISION_LAYER = re.compile(r"^vision_model\.encoder\.layers\.(\d+)\.(.+)$")
_VISION_LAYER_PARTS = {
    "attn.proj.": "attention.projection_layer.",
    "attn.q_norm.": "attention.q_norm.",
    "attn.k_norm.": "attention.k_norm.",
    "mlp.fc1.": "mlp.fc1.",
    "mlp.fc2.": "mlp.fc2.",
    "norm1.": "layernorm_before.",
    "norm2.": "layernorm_after.",
}
_VISION_EMBEDDINGS = {
    "vision_model.embeddings.class_embedding": "vision_tower.embeddings.cls_token",
    "vision_model.embeddings.position_embedding": "vision_tower.embeddings.position_embeddings",
}
_PROJECTOR = {"mlp1.0.": "multi_modal_projector.layer_norm.",
              "mlp1.1.": "multi_modal_projector.linear_1.",
              "mlp1.3.": "multi_modal_projector.linear_2."}


def is_sa2va_i(names: set[str]) -> bool:
    """Sa2VA-i files carry the finetuned decoder under its own name."""
    return any(n.startswith(MODIFIED_DECODER) for n in names)


def map_name(name: str, has_modified_decoder: bool) -> str | None:
    """Our parameter name for one official tensor name (None: not one of ours).

    ``attn.qkv`` tensors map to a placeholder ending in ``.qkv.<weight|bias>`` that
    ``expand`` turns into the q/k/v names (filled by ``qkv_chunks``).
    """
    if name in _VISION_EMBEDDINGS:
        return _VISION_EMBEDDINGS[name]
    if name.startswith("vision_model.embeddings.patch_embedding."):
        return "vision_tower.embeddings.patch_embeddings.projection." + name.rsplit(".", 1)[1]
    m = _VISION_LAYER.match(name)
    if m:
        layer, rest = m.groups()
        base = f"vision_tower.encoder.layer.{layer}."
        if rest in ("ls1", "ls2"):
            return base + ("lambda_1" if rest == "ls1" else "lambda_2")
        if rest.startswith("attn.qkv."):
            return base + "attention.qkv." + rest.rsplit(".", 1)[1]
        for old, new in _VISION_LAYER_PARTS.items():
            if rest.startswith(old):
                return base + new + rest[len(old):]
        return None
    for old, new in _PROJECTOR.items():
        if name.startswith(old):
            return new + name[len(old):]
    if name.startswith(("language_model.", "text_hidden_fcs.")):
        return name
    if name.startswith(MODIFIED_DECODER):
        return "finetuned_decoder." + name[len(MODIFIED_DECODER):]
    if name.startswith(SAM2_DECODER) and not has_modified_decoder:
        return "finetuned_decoder." + name[len(SAM2_DECODER):]
    if name.startswith(SAM2_PREFIX):
        rest = name[len(SAM2_PREFIX):]
        return "sam2." + re.sub(r"\.g_weight$", ".gamma", rest)
    return None


def qkv_chunks(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k, v of a fused InternViT ``attn.qkv`` tensor: [:D], [D:2D], [-D:]."""
    dim = tensor.shape[0] // 3
    return tensor[:dim], tensor[dim:2 * dim], tensor[-dim:]


def expand(name: str, has_modified_decoder: bool) -> list[str] | None:
    """All our parameter names one official tensor fills (three for a fused qkv)."""
    ours = map_name(name, has_modified_decoder)
    if ours is None:
        return None
    if ours.startswith("vision_tower.") and ".attention.qkv." in ours:  # SAM2's Hiera keeps its fused qkv
        base, param = ours.rsplit(".qkv.", 1)
        return [f"{base}.{p}_proj.{param}" for p in "qkv"]
    return [ours]


def original_decoder_name(name: str) -> str | None:
    """Our name for a tensor of a SAM 2.0 checkpoint in the sam2 package's layout.

    Only its ``sam_mask_decoder.*`` tensors are used: for a plain Sa2VA checkpoint
    the original decoder comes from there (every other SAM2 tensor of Sa2VA is
    SAM 2.0 Hiera-L already).
    """
    for prefix in ("", "model.", SAM2_PREFIX):
        if name.startswith(prefix + "sam_mask_decoder."):
            return "sam2." + name[len(prefix):]
    return None


@dataclass(frozen=True)
class Layout:
    """What decides the renames of one checkpoint."""

    sa2va_i: bool  # both SAM2 decoders on disk
    internlm2: tuple[int, int, int] | None = None  # (heads, kv heads, head dim) of an InternLM2 language model


def targets(name: str, shape: tuple[int, ...], layout: Layout) -> list[tuple[str, list[Piece]]] | None:
    """Our tensors one official tensor fills, each with the row pieces it takes (None: not one of ours)."""
    rows = shape[0] if shape else 1
    if layout.internlm2 is not None and name.startswith(internlm2.PREFIX):
        ours = internlm2.map_name(name)
        if ours is None:
            return None
        if ".self_attn.qkv." in ours:
            base, param = ours.rsplit(".qkv.", 1)
            pieces = internlm2.wqkv_pieces(*layout.internlm2)
            return [(f"{base}.{p}_proj.{param}", pieces[p]) for p in "qkv"]
        return [(ours, [(0, rows, 0)])]
    names = expand(name, layout.sa2va_i)
    if names is None:
        return None
    if len(names) == 3:  # InternViT's fused qkv: [:D], [D:2D], [2D:]
        dim = rows // 3
        return [(n, [(k * dim, dim, 0)]) for k, n in enumerate(names)]
    return [(names[0], [(0, rows, 0)])]
