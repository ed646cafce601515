"""Every exported graph, run by onnxruntime's CPU provider, against sam2's own torch module (tiny models).

The references are sam2's modules called directly (``forward_image``,
``memory_attention`` with its complex rotary, ``memory_encoder``, the prompt
encoder + ``predict_masks``, and ``_forward_sam_heads`` for the multimask
choice), never code of this project. Tolerance: 1e-4 absolute on outputs of
order 1-10 (random weights). Both sides compute in float32; onnxruntime fuses
and reorders operations (attention as MatMul + Softmax, GELU and layer norms
fused), so the last bits of float32 rounding differ and accumulate over the
layers (observed: up to ~5e-6 on these tiny models).
"""

from __future__ import annotations

import pytest
import torch
from onnx_helpers import exported, max_diff
from tracker_model_helpers import product_model

from sa2va_i_ros.testing.tiny_trackers import build_tiny_tracker
from sa2va_i_ros.tracking.models import TRACKER_MODELS
from sa2va_i_ros.tracking.onnx import onnx_calls
from sa2va_i_ros.tracking.onnx.export import export_tracker
from sa2va_i_ros.tracking.onnx.session import OrtGraph

ATOL = 1e-4
NAMES = ["checkpoint", "sam2.1_hiera_t"]


def _calls(name):
    return onnx_calls(product_model(name), exported(name))


@pytest.mark.parametrize("name", NAMES)
def test_image_encoder(name):
    model, calls = product_model(name), _calls(name)
    pixels = torch.randn(1, 3, model.image_size, model.image_size)
    with torch.no_grad():
        ref = model.forward_image(pixels)
    out = calls.image_encoder(pixels)
    assert len(out["backbone_fpn"]) == len(ref["backbone_fpn"]) == 3
    for a, b in zip(out["backbone_fpn"], ref["backbone_fpn"], strict=True):
        assert max_diff(a, b) <= ATOL
    for a, b in zip(out["vision_pos_enc"], ref["vision_pos_enc"], strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("batch, frames, pointers", [(1, 1, 4), (2, 3, 16), (3, 7, 64)])
def test_memory_attention(name, batch, frames, pointers):
    model, calls = product_model(name), _calls(name)
    tokens, c, m = model.sam_image_embedding_size ** 2, model.hidden_dim, model.mem_dim
    torch.manual_seed(batch)
    curr, curr_pos = torch.randn(tokens, batch, c), torch.randn(tokens, batch, c)
    memory = torch.randn(frames * tokens + pointers, batch, m)
    memory_pos = torch.randn(frames * tokens + pointers, batch, m)
    with torch.no_grad():
        ref = model.memory_attention(curr=[curr], curr_pos=[curr_pos], memory=memory.clone(),
                                     memory_pos=memory_pos, num_obj_ptr_tokens=pointers)
    out = calls.memory_attention(curr=[curr], curr_pos=[curr_pos], memory=memory, memory_pos=memory_pos,
                                 num_obj_ptr_tokens=pointers)
    assert max_diff(out, ref) <= ATOL


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("batch", [1, 3])
def test_memory_encoder(name, batch):
    model, calls = product_model(name), _calls(name)
    h, s = model.sam_image_embedding_size, model.image_size
    torch.manual_seed(batch)
    pix, masks = torch.randn(batch, model.hidden_dim, h, h), torch.randn(batch, 1, s, s) * 10
    with torch.no_grad():
        ref = model.memory_encoder(pix, masks, skip_mask_sigmoid=False)
    out = calls.memory_encoder(pix, masks, skip_mask_sigmoid=False)
    assert max_diff(out["vision_features"], ref["vision_features"]) <= ATOL
    assert torch.equal(out["vision_pos_enc"][0], ref["vision_pos_enc"][0])


def _decoder_inputs(model, batch, seed):
    h, c = model.sam_image_embedding_size, model.hidden_dim
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, c, h, h, generator=g),
            [torch.randn(batch, c // 8, 4 * h, 4 * h, generator=g),
             torch.randn(batch, c // 4, 2 * h, 2 * h, generator=g)],
            (torch.rand(batch, 1, 4 * h, 4 * h, generator=g) > 0.5).float())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("with_mask", [False, True])
def test_mask_decoder_outputs_all_four_planes(name, with_mask):
    model, calls = product_model(name), _calls(name)
    image, high_res, mask = _decoder_inputs(model, 3, 0)
    coords, labels = torch.zeros(3, 1, 2), -torch.ones(3, 1, dtype=torch.int32)
    with torch.no_grad():
        sparse, dense = model.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=mask if with_mask else None)
        ref = model.sam_mask_decoder.predict_masks(image, model.sam_prompt_encoder.get_dense_pe(), sparse, dense,
                                                   repeat_image=False, high_res_features=high_res)
    prompt, _ = calls.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=mask if with_mask else None)
    out = calls.sam_mask_decoder.predict_masks(image, None, prompt, None, repeat_image=False,
                                               high_res_features=high_res)
    assert out[0].shape[1] == 4 and out[1].shape == (3, 4)
    for a, b in zip(out, ref, strict=True):
        assert max_diff(a, b) <= ATOL


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("multimask", [False, True])
@pytest.mark.parametrize("with_mask", [False, True])
def test_sam_heads_choose_as_sam2(name, multimask, with_mask):
    """sam2's ``_forward_sam_heads`` on the graphs' four planes: single mask, best of three, or the
    dynamic stability fallback, and the object pointer of the chosen token, as on sam2's modules."""
    model, calls = product_model(name), _calls(name)
    image, high_res, mask = _decoder_inputs(model, 6, 1)
    kwargs = dict(backbone_features=image, point_inputs=None, mask_inputs=mask if with_mask else None,
                  high_res_features=high_res, multimask_output=multimask)
    with torch.no_grad():
        ref = model._forward_sam_heads(**kwargs)
        out = calls._forward_sam_heads(**kwargs)
    for a, b in zip(out, ref, strict=True):
        assert max_diff(a, b) <= ATOL


def test_point_prompts_are_refused():
    calls = _calls("checkpoint")
    with pytest.raises(NotImplementedError, match="mask prompts only"):
        calls.sam_prompt_encoder(points=(torch.zeros(1, 1, 2), torch.ones(1, 1, dtype=torch.int32)), boxes=None,
                                 masks=None)


@pytest.mark.parametrize("name", [n for n in TRACKER_MODELS if n != "sam2.1_hiera_t"])
def test_every_configs_image_encoder(name, tmp_path):
    """The trunk is what differs between sam2's sizes (depth, global-attention blocks, Hiera-L's windows);
    the other graphs are the same modules in every config (compared above on two of them)."""
    model, _ = build_tiny_tracker(name)
    path = export_tracker(model, tmp_path, name, TRACKER_MODELS[name].config, graphs=("image_encoder",))
    graph = OrtGraph(path["image_encoder"], torch.device("cpu"))
    pixels = torch.randn(1, 3, model.image_size, model.image_size)
    with torch.no_grad():
        ref = model.forward_image(pixels)["backbone_fpn"]
    for a, b in zip(graph(pixels=pixels), ref, strict=True):
        assert max_diff(a, b) <= ATOL
