"""InternLM2 tensor names -> transformers' Llama names, and the grouped ``wqkv`` split.

Sa2VA-8B/26B store the language model as InternLM2 (``language_model.model.*``,
``language_model.output``). It is a Llama network once its fused ``wqkv`` is
split: InternLM2 lays the rows out per key/value head h as G query heads, then
the key head, then the value head (G = heads / KV heads, each ``head_dim`` rows;
``modeling_internlm2.py`` rearranges ``(h gs d)`` with ``gs = G + 2``). So query
head j = h*G + g sits at rows (h*(G+2) + g)*d, key head h at (h*(G+2) + G)*d and
value head h at (h*(G+2) + G + 1)*d. RoPE is already the rotate-half form, so no
permutation of q/k is needed. Renames apply only under ``language_model.``: the
pattern ``output`` would also hit SAM2's ``output_upscaling``.
"""

from __future__ import annotations

import re

import torch

from sa2va_i_ros.model.checkpoint.stream import Piece

PREFIX = "language_model."
_TOP = {"model.tok_embeddings.": "model.embed_tokens.", "model.norm.": "model.norm.", "output.": "lm_head."}
_LAYER = re.compile(r"^model\.layers\.(\d+)\.(.+)$")
_LAYER_PARTS = {"attention.wo.": "self_attn.o_proj.", "feed_forward.w1.": "mlp.gate_proj.",
                "feed_forward.w3.": "mlp.up_proj.", "feed_forward.w2.": "mlp.down_proj.",
                "attention_norm.": "input_layernorm.", "ffn_norm.": "post_attention_layernorm."}


def map_name(name: str) -> str | None:
    """Our name for an InternLM2 tensor (``attention.wqkv.*`` -> a ``.qkv.`` placeholder)."""
    if not name.startswith(PREFIX):
        return None
    rest = name[len(PREFIX):]
    for old, new in _TOP.items():
        if rest.startswith(old):
            return PREFIX + new + rest[len(old):]
    m = _LAYER.match(rest)
    if m is None:
        return None
    layer, part = m.groups()
    base = f"{PREFIX}model.layers.{layer}."
    if part.startswith("attention.wqkv."):
        return base + "self_attn.qkv." + part.rsplit(".", 1)[1]
    for old, new in _LAYER_PARTS.items():
        if part.startswith(old):
            return base + new + part[len(old):]
    return None


def wqkv_pieces(heads: int, kv_heads: int, head_dim: int) -> dict[str, list[Piece]]:
    """Row pieces of a fused ``wqkv`` tensor (weight or bias) for q_proj, k_proj and v_proj."""
    if heads % kv_heads:
        raise ValueError(f"{heads} attention heads do not split into {kv_heads} key/value groups")
    g, d = heads // kv_heads, head_dim
    block = (g + 2) * d
    return {"q": [(h * block, g * d, h * g * d) for h in range(kv_heads)],
            "k": [(h * block + g * d, d, h * d) for h in range(kv_heads)],
            "v": [(h * block + (g + 1) * d, d, h * d) for h in range(kv_heads)]}


def fuse_wqkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, kv_heads: int) -> torch.Tensor:
    """The inverse of the split: q/k/v rows back into InternLM2's grouped ``wqkv`` layout."""
    g = heads // kv_heads
    d = q.shape[0] // heads
    rest = q.shape[1:]
    qg = q.reshape(kv_heads, g, d, *rest)
    return torch.cat([qg, k.reshape(kv_heads, 1, d, *rest), v.reshape(kv_heads, 1, d, *rest)], dim=1).reshape(
        kv_heads * (g + 2) * d, *rest)


def official_names(state: dict[str, torch.Tensor], heads: int, kv_heads: int) -> dict[str, torch.Tensor]:
    """Our Llama tensors of ``language_model.*`` under InternLM2's names (for writing test checkpoints)."""
    inverse_top = {v: k for k, v in _TOP.items()}
    inverse_parts = {v: k for k, v in _LAYER_PARTS.items()}
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for name, t in state.items():
        rest = name[len(PREFIX):]
        top = next((k for k in inverse_top if rest.startswith(k)), None)
        if top is not None:
            out[PREFIX + inverse_top[top] + rest[len(top):]] = t
            continue
        layer, part = _LAYER.match(rest).groups()
        base = f"{PREFIX}model.layers.{layer}."
        m = re.match(r"self_attn\.([qkv])_proj\.(weight|bias)$", part)
        if m:
            qkv.setdefault(base + "attention.wqkv." + m.group(2), {})[m.group(1)] = t
            continue
        new = next(k for k in inverse_parts if part.startswith(k))
        out[base + inverse_parts[new] + part[len(new):]] = t
    for fused, parts in qkv.items():
        out[fused] = fuse_wqkv(parts["q"], parts["k"], parts["v"], heads, kv_heads)
    return out
