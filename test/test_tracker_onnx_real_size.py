"""Every exported graph of a real-size model (SAM 2.1 Hiera-T, random weights, 1024 input) against sam2's module.

Real size end to end (30 frames, two objects, full memory) would take about ten
minutes per backend on this project's 2-core CI machine (the memory attention
alone is ~9 s per frame, docs/TRACKER.md), so the streaming comparison runs on the
tiny models (test_tracker_onnx_streaming.py) and here each module is compared
once at real size, with the shapes tracking gives it (batch of two objects, a
memory of two frames and the pointers of the full window).

Tolerances are relative to the largest reference value, float32 on both sides:
onnxruntime reorders and fuses operations, so rounding differs in the last bits
and grows with depth. Observed (max |diff| / max |reference|): image encoder
(12 Hiera blocks + neck) 1.1e-6, memory attention (4 layers over 8192 memory
tokens + 64 pointer tokens) 5.6e-7, memory encoder 5.9e-7, mask decoder and the
multimask choice 4.2e-7.
1e-4 leaves a margin for other CPUs' kernels while a wrong weight, sign or
position encoding is off by O(1) (see test_tracker_onnx_rotary.py).
"""

from __future__ import annotations

import functools

import pytest
import torch
from onnx_helpers import export_dir

from sa2va_i_ros.tracking.models import build_tracker_model
from sa2va_i_ros.tracking.onnx import onnx_calls

pytestmark = pytest.mark.slow
RTOL = 1e-4
NAME = "sam2.1_hiera_t"


@functools.cache
def _model_and_calls():
    torch.manual_seed(0)
    model = build_tracker_model(NAME)
    return model, onnx_calls(model, export_dir(model, f"{NAME}-real"))


def _close(out: torch.Tensor, ref: torch.Tensor) -> None:
    assert out.shape == ref.shape
    scale = float(ref.abs().max())
    diff = float((out - ref).abs().max())
    assert diff <= RTOL * max(scale, 1.0), f"max |diff| {diff:.3g} for values up to {scale:.3g}"


def test_real_size_graphs_match_sam2s_modules():
    model, calls = _model_and_calls()
    assert model.image_size == 1024
    torch.manual_seed(1)
    with torch.no_grad():
        pixels = torch.randn(1, 3, 1024, 1024)
        ref = model.forward_image(pixels)["backbone_fpn"]
        out = calls.image_encoder(pixels)["backbone_fpn"]
        for a, b in zip(out, ref, strict=True):
            _close(a, b)

        top = ref[-1]  # (1, 256, 64, 64)
        tokens, c, m, batch = 64 * 64, model.hidden_dim, model.mem_dim, 2
        curr = top.flatten(2).permute(2, 0, 1).expand(-1, batch, -1).contiguous()
        curr_pos = torch.randn(tokens, batch, c)
        pointers = 16 * (c // m)
        memory, memory_pos = torch.randn(2 * tokens + pointers, batch, m), torch.randn(2 * tokens + pointers, batch, m)
        kwargs = dict(curr=[curr], curr_pos=[curr_pos], memory=memory, memory_pos=memory_pos,
                      num_obj_ptr_tokens=pointers)
        _close(calls.memory_attention(**kwargs), model.memory_attention(**{**kwargs, "memory": memory.clone()}))

        pix = top.expand(batch, -1, -1, -1)
        masks = torch.sigmoid(torch.randn(batch, 1, 1024, 1024) * 10)
        _close(calls.memory_encoder(pix, masks, skip_mask_sigmoid=True)["vision_features"],
               model.memory_encoder(pix, masks, skip_mask_sigmoid=True)["vision_features"])

        high_res = [x.expand(batch, -1, -1, -1) for x in ref[:2]]
        mask_in = (torch.rand(batch, 1, 1024, 1024) > 0.5).float()
        for mask_inputs, multimask in ((None, True), (None, False), (mask_in, False)):
            kw = dict(backbone_features=pix, point_inputs=None, mask_inputs=mask_inputs, high_res_features=high_res,
                      multimask_output=multimask)
            for a, b in zip(calls._forward_sam_heads(**kw), model._forward_sam_heads(**kw), strict=True):
                _close(a, b)
