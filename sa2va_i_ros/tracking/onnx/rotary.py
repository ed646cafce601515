"""sam2's rotary attention in real arithmetic, so that ONNX can express it.

sam2's ``apply_rotary_enc`` rotates query/key pairs by multiplying complex
numbers (``view_as_complex``, ``torch.polar``); ONNX has no complex type
(facebookresearch/sam2#186). Here the same rotation is written with the cosine
and sine of the very angles sam2 computes (the real and imaginary parts of its
``freqs_cis``): ``(a + ib)(c + is) = (ac - bs) + i(as + bc)``.
``RealRoPEAttention`` is sam2's ``RoPEAttention`` with its weights shared and
only the rotation (and the in-place key update, written as a concatenation)
changed; ``real_rotary_memory_attention`` is a copy of a memory attention with
every rotary attention replaced. Used only to export: the torch backend keeps
sam2's own modules.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from sam2.modeling.sam.transformer import RoPEAttention


def rotate_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive pairs of the last dim of ``x`` (..., N, D) by angles with ``cos``/``sin`` (N, D/2).

    A key longer than the table (memories of several frames) repeats the table
    along the tokens, as sam2's ``repeat_freqs_k`` does: its length must be a
    multiple of N.
    """
    n, half = cos.shape
    lead = x.shape[:-2]
    pairs = x.float().reshape(*lead, -1, n, half, 2)  # (..., repeats, N, D/2, 2)
    a, b = pairs[..., 0], pairs[..., 1]
    out = torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1)
    return out.reshape(x.shape).type_as(x)


class RealRoPEAttention(RoPEAttention):
    """sam2's ``RoPEAttention`` (same projections, same weights) with a real-valued rotation.

    The cosine/sine tables are fixed at construction for ``tokens`` query
    tokens (the top feature map, fixed for a given input size).
    """

    def __init__(self, original: RoPEAttention, tokens: int) -> None:
        torch.nn.Module.__init__(self)
        self.__dict__.update({k: v for k, v in original.__dict__.items() if k not in ("_modules", "_parameters",
                                                                                       "_buffers")})
        self._modules = dict(original._modules)  # shared projections: q/k/v/out_proj
        self._parameters = dict(original._parameters)
        self._buffers = dict(original._buffers)
        freqs = original.freqs_cis
        if freqs.shape[0] != tokens:  # as RoPEAttention.forward recomputes for another feature size
            side = math.sqrt(tokens)
            freqs = original.compute_cis(end_x=side, end_y=side)
        self.register_buffer("rope_cos", freqs.real.float().contiguous(), persistent=False)
        self.register_buffer("rope_sin", freqs.imag.float().contiguous(), persistent=False)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_k_exclude_rope: int = 0) -> torch.Tensor:
        q = self._separate_heads(self.q_proj(q), self.num_heads)
        k = self._separate_heads(self.k_proj(k), self.num_heads)
        v = self._separate_heads(self.v_proj(v), self.num_heads)
        q = rotate_pairs(q, self.rope_cos, self.rope_sin)
        num_k_rope = k.size(-2) - num_k_exclude_rope
        rotated = rotate_pairs(k[:, :, :num_k_rope], self.rope_cos, self.rope_sin)
        k = torch.cat([rotated, k[:, :, num_k_rope:]], dim=2)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(self._recombine_heads(out))


def real_rotary_memory_attention(memory_attention: torch.nn.Module, tokens: int) -> torch.nn.Module:
    """A copy of sam2's ``MemoryAttention`` whose rotary attentions rotate in real arithmetic.

    The copy shares no state with the original (deep copy), so exporting it
    never touches the model the tracker runs.
    """
    clone = copy.deepcopy(memory_attention).eval()
    for layer in clone.layers:
        for name in ("self_attn", "cross_attn_image"):
            attn = getattr(layer, name)
            if isinstance(attn, RoPEAttention):
                setattr(layer, name, RealRoPEAttention(attn, tokens))
    return clone
