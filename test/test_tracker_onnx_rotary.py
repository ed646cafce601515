"""The rotary encoding in real arithmetic (tracking/onnx/rotary.py) equals sam2's complex one.

sam2's ``apply_rotary_enc`` multiplies by complex exponentials; ONNX has no complex
numbers, so the exported memory attention rotates pairs with cos/sin. Compared here
with sam2's own ``RoPEAttention`` / ``MemoryAttention`` on the same weights. Tolerance
1e-6: both compute (a*c - b*s, a*s + b*c) in float32 with the same cos/sin values, so
they may differ only in the rounding of a fused multiply-add (observed: 0 to 2e-7).
"""

from __future__ import annotations

import pytest
import torch
from sam2.modeling.position_encoding import apply_rotary_enc, compute_axial_cis
from sam2.modeling.sam.transformer import RoPEAttention

from sa2va_i_ros.testing.tiny_trackers import build_tiny_tracker
from sa2va_i_ros.tracking.onnx.rotary import RealRoPEAttention, real_rotary_memory_attention, rotate_pairs

ATOL = 1e-6


@pytest.mark.parametrize("repeats", [1, 3])
def test_rotate_pairs_equals_apply_rotary_enc(repeats):
    torch.manual_seed(0)
    side, dim = 8, 32
    freqs = compute_axial_cis(dim=dim, end_x=side, end_y=side)
    q = torch.randn(2, 1, side * side, dim)
    k = torch.randn(2, 1, repeats * side * side, dim)
    q_ref, k_ref = apply_rotary_enc(q, k, freqs, repeat_freqs_k=repeats > 1)
    torch.testing.assert_close(rotate_pairs(q, freqs.real, freqs.imag), q_ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(rotate_pairs(k, freqs.real, freqs.imag), k_ref, atol=ATOL, rtol=0)


def test_a_wrong_sign_is_far_outside_the_tolerance():
    """The comparison can fail: a rotation by -angle (a mutation of rotate_pairs) misses by O(1)."""
    torch.manual_seed(0)
    freqs = compute_axial_cis(dim=32, end_x=8, end_y=8)
    q = torch.randn(1, 1, 64, 32)
    q_ref, _ = apply_rotary_enc(q, q, freqs)
    assert float((rotate_pairs(q, freqs.real, -freqs.imag) - q_ref).abs().max()) > 0.5


@pytest.mark.parametrize("pointer_tokens", [0, 4, 12])
def test_real_rope_attention_equals_sam2s(pointer_tokens):
    torch.manual_seed(1)
    attn = RoPEAttention(embedding_dim=32, num_heads=1, kv_in_dim=16, rope_k_repeat=True, feat_sizes=(8, 8)).eval()
    real = RealRoPEAttention(attn, tokens=64)
    q = torch.randn(2, 64, 32)
    k = torch.randn(2, 3 * 64 + pointer_tokens, 16)
    v = torch.randn(2, 3 * 64 + pointer_tokens, 16)
    with torch.no_grad():
        ref = attn(q, k.clone(), v, num_k_exclude_rope=pointer_tokens)
        out = real(q, k.clone(), v, num_k_exclude_rope=pointer_tokens)
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)
    assert real.q_proj is attn.q_proj  # the same weights, not a copy


@pytest.mark.parametrize("name", ["sam2.1_hiera_t", "sam2_hiera_l"])
def test_memory_attention_with_real_rotary_equals_sam2s(name):
    model, _ = build_tiny_tracker(name)
    tokens = model.sam_image_embedding_size ** 2  # another size than the module was built for: recomputed
    real = real_rotary_memory_attention(model.memory_attention, tokens)
    torch.manual_seed(2)
    c, m = model.hidden_dim, model.mem_dim
    curr, curr_pos = torch.randn(tokens, 2, c), torch.randn(tokens, 2, c)
    memory, memory_pos = torch.randn(4 * tokens + 8, 2, m), torch.randn(4 * tokens + 8, 2, m)
    with torch.no_grad():
        ref = model.memory_attention(curr=[curr], curr_pos=[curr_pos], memory=memory, memory_pos=memory_pos,
                                     num_obj_ptr_tokens=8)
        out = real(curr=[curr], curr_pos=[curr_pos], memory=memory, memory_pos=memory_pos, num_obj_ptr_tokens=8)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)  # 4 layers of the above, plus layer norms
