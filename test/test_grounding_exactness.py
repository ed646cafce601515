"""The grounding engine against independent references of each Sa2VA-i step.

Whole-pipeline equality with the official Sa2VA-i code (ids, [SEG] states,
keyframe logits and masks, propagation) is in test_official_fixtures.py; here
each step is checked against a reference written from the official tensors or
formulas without the product's code.
"""

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

from sa2va_i_ros.grounding.engine import GroundingOptions
from sa2va_i_ros.model import preprocess
from sa2va_i_ros.model.sam2_model import encode_image, with_decoder_convs
from sa2va_i_ros.model.seg_decode import decode_language_prompt, logits_to_masks
from sa2va_i_ros.model.vision_features import image_embeddings, pixel_shuffle

QUERY = "the cup left of the bowl"


# -- preprocessing --------------------------------------------------------------------------------
def test_mllm_preprocessing_matches_an_independent_computation(frames):
    frame = frames[3][:, :150]  # not square: the 448x448 resize squashes, no letterbox
    got = preprocess.mllm_pixels(frame)
    resized = np.asarray(Image.fromarray(frame).resize((448, 448), Image.Resampling.BICUBIC), dtype=np.float64)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    expected = ((resized / 255.0 - mean) / std).transpose(2, 0, 1)
    assert got.shape == (3, 448, 448) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected, atol=2e-6)


def test_sam2_preprocessing_uses_bf16_rounded_constants(frames):
    assert preprocess.SAM2_MEAN_BF16 == (0.484375, 0.455078125, 0.40625)
    assert preprocess.SAM2_STD_BF16 == (0.228515625, 0.2236328125, 0.224609375)
    assert torch.tensor((0.485, 0.456, 0.406), dtype=torch.bfloat16).tolist() == list(preprocess.SAM2_MEAN_BF16)
    got = preprocess.sam2_pixels(frames[0], 256)
    resized = np.asarray(Image.fromarray(frames[0]).resize((256, 256), Image.Resampling.BICUBIC), dtype=np.float64)
    expected = ((resized / 255.0 - np.array(preprocess.SAM2_MEAN_BF16)) / np.array(preprocess.SAM2_STD_BF16))
    np.testing.assert_allclose(got.numpy(), expected.transpose(2, 0, 1), atol=2e-6)


def test_pixel_shuffle_v2_matches_an_index_formula():
    x = torch.arange(2 * 4 * 6 * 3, dtype=torch.float32).reshape(2, 4, 6, 3)
    y = pixel_shuffle(x, 0.5, "v2")
    n, w, h, c = x.shape
    assert y.shape == (n, w // 2, h // 2, 4 * c)
    for p in range(w // 2):
        for q in range(h // 2):
            for k in range(4 * c):
                assert y[1, p, q, k] == x[1, 2 * p + k // (2 * c), 2 * q + (k % (2 * c)) // c, k % c]
    assert torch.equal(pixel_shuffle(x, 0.5, "v1"), y.permute(0, 2, 1, 3))


# -- vision tower + projector ---------------------------------------------------------------------
def _internvit_reference(sd, pixels, heads):
    """InternViT + Sa2VA's mlp1 written from the official tensors, independent of transformers."""
    p = "vision_model."
    x = F.conv2d(pixels, sd[p + "embeddings.patch_embedding.weight"], sd[p + "embeddings.patch_embedding.bias"],
                 stride=14).flatten(2).transpose(1, 2)
    cls = sd[p + "embeddings.class_embedding"].expand(x.shape[0], -1, -1)
    x = torch.cat([cls, x], dim=1) + sd[p + "embeddings.position_embedding"]
    layer = 0
    while f"{p}encoder.layers.{layer}.ls1" in sd:
        q = f"{p}encoder.layers.{layer}."
        h = F.layer_norm(x, x.shape[-1:], sd[q + "norm1.weight"], sd[q + "norm1.bias"], eps=1e-6)
        b, n, d = h.shape
        qkv = (h @ sd[q + "attn.qkv.weight"].T + sd[q + "attn.qkv.bias"]).reshape(b, n, 3, heads, d // heads)
        qq, kk, vv = qkv.permute(2, 0, 3, 1, 4)
        att = torch.softmax(qq @ kk.transpose(-1, -2) * (d // heads) ** -0.5, dim=-1) @ vv
        att = att.transpose(1, 2).reshape(b, n, d) @ sd[q + "attn.proj.weight"].T + sd[q + "attn.proj.bias"]
        x = x + sd[q + "ls1"] * att
        h = F.layer_norm(x, x.shape[-1:], sd[q + "norm2.weight"], sd[q + "norm2.bias"], eps=1e-6)
        h = F.gelu(h @ sd[q + "mlp.fc1.weight"].T + sd[q + "mlp.fc1.bias"]) @ sd[q + "mlp.fc2.weight"].T
        x = x + sd[q + "ls2"] * (h + sd[q + "mlp.fc2.bias"])
        layer += 1
    grid = x[:, 1:].reshape(x.shape[0], 32, 32, -1)
    shuffled = torch.zeros(x.shape[0], 16, 16, 4 * grid.shape[-1])
    c = grid.shape[-1]
    for a in range(2):
        for bb in range(2):  # v2: channel block (a, bb) holds grid[2p + a, 2q + bb]
            shuffled[..., (2 * a + bb) * c:(2 * a + bb + 1) * c] = grid[:, a::2, bb::2]
    t = shuffled.reshape(x.shape[0], 256, -1)
    t = F.layer_norm(t, t.shape[-1:], sd["mlp1.0.weight"], sd["mlp1.0.bias"])
    t = F.gelu(t @ sd["mlp1.1.weight"].T + sd["mlp1.1.bias"])
    return t @ sd["mlp1.3.weight"].T + sd["mlp1.3.bias"]


def test_vision_tokens_equal_an_independent_internvit(engine, tiny_checkpoint, frames):
    sd = {k: v.float() for k, v in load_file(str(tiny_checkpoint / "model-00001-of-00002.safetensors")).items()}
    pixels = torch.stack([preprocess.mllm_pixels(f) for f in frames[:2]])
    with torch.no_grad():
        ours = image_embeddings(engine.model, pixels)
        ref = _internvit_reference(sd, pixels, engine.cfg.vision["num_attention_heads"])
    assert ours.shape == (2, 256, engine.cfg.llm["hidden_size"])
    torch.testing.assert_close(ours, ref, atol=2e-5, rtol=1e-4)


# -- language model -------------------------------------------------------------------------------
def test_seg_state_is_at_the_seg_tokens_own_position(engine, frames):
    """One full forward over prompt + answer: the state AT [SEG] (not the one before) is used."""
    from sa2va_i_ros.model import prompt as P

    result = engine.ground(frames, QUERY, GroundingOptions(num_frames=3))
    unique = sorted(set(result.sampled_indices))
    ids = engine.tokenizer.encode(P.build_prompt(QUERY, len(unique), engine.cfg.template))
    answer_ids = engine.tokenizer.encode(result.raw_answer)
    model = engine.model
    with torch.no_grad():
        vit = image_embeddings(model, torch.stack([preprocess.mllm_pixels(frames[i]) for i in unique]))
        full = torch.tensor([ids + answer_ids])
        embeds = model.language_model.get_input_embeddings()(full).clone()
        embeds[0, full[0] == engine.img_context_id] = vit.reshape(-1, vit.shape[-1])
        states = model.language_model(inputs_embeds=embeds, output_hidden_states=True).hidden_states[-1][0]
        pos = (full[0] == engine.seg_id).nonzero().item()
        own, shifted = model.text_hidden_fcs(states[pos]), model.text_hidden_fcs(states[pos - 1])
    torch.testing.assert_close(result.seg_embeddings[0], own, atol=2e-5, rtol=1e-4)
    assert (result.seg_embeddings[0] - shifted).abs().max() > 1e-2


# -- SAM2 decoding --------------------------------------------------------------------------------
def test_decoder_call_equals_a_direct_call_of_sam2s_mask_decoder(engine, frames):
    model = engine.model
    sam2, dec = model.sam2, model.finetuned_decoder
    pixels = torch.stack([preprocess.sam2_pixels(f, engine.cfg.sam2.image_size) for f in frames[:3]])
    language = torch.randn(3, 1, sam2.hidden_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        raw = encode_image(sam2, pixels)
        low_res, ious, _ = decode_language_prompt(sam2, dec, with_decoder_convs(raw, dec), language)
        # direct: the finetuned decoder's own convs for the high-res levels, top level + no_mem_embed,
        # sparse = [not_a_point, not_a_point, language], dense = no_mask_embed, multimask, best IoU
        top = raw["backbone_fpn"][2] + sam2.no_mem_embed.reshape(1, -1, 1, 1)
        nap = sam2.sam_prompt_encoder.not_a_point_embed.weight.reshape(1, 1, -1).expand(3, 2, -1)
        sparse = torch.cat([nap, language], dim=1)
        h, w = top.shape[-2:]
        dense = sam2.sam_prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(3, -1, h, w)
        masks, ious_direct, _, _ = dec(
            image_embeddings=top, image_pe=sam2.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=True,
            repeat_image=False,
            high_res_features=[dec.conv_s0(raw["backbone_fpn"][0]), dec.conv_s1(raw["backbone_fpn"][1])])
    best = masks[torch.arange(3), ious_direct.argmax(-1)].unsqueeze(1)
    assert masks.shape[1] == 3  # multimask output
    torch.testing.assert_close(low_res, best, rtol=0, atol=0)
    torch.testing.assert_close(ious, ious_direct, rtol=0, atol=0)
    up = F.interpolate(best, size=(120, 160), mode="bilinear", align_corners=False)[:, 0]
    assert torch.equal(logits_to_masks(low_res, 120, 160), torch.sigmoid(up) > 0.5)


def test_grounding_uses_the_finetuned_decoder_not_the_original(engine, frames):
    result = engine.ground(frames, QUERY)
    model = engine.model
    pixels = torch.stack([result.sam2_pixels[i] for i in result.sampled_indices])
    with torch.no_grad():
        raw = encode_image(model.sam2, pixels)
        lang = result.seg_embeddings[0].reshape(1, 1, -1).expand(len(result.sampled_indices), 1, -1)
        fine, orig = model.finetuned_decoder, model.sam2.sam_mask_decoder
        low_fine, _, _ = decode_language_prompt(model.sam2, fine, with_decoder_convs(raw, fine), lang)
        low_orig, _, _ = decode_language_prompt(model.sam2, orig, with_decoder_convs(raw, orig), lang)
    np.testing.assert_array_equal(logits_to_masks(low_fine, 120, 160).numpy(), result.masks[0])
    assert not np.array_equal(logits_to_masks(low_orig, 120, 160).numpy(), result.masks[0])


def test_features_handed_to_the_tracker_are_the_original_decoders(engine, frames):
    """The tracker reuses the encoder pass of grounding: the original decoder's convs, shared pos enc."""
    result = engine.ground(frames, QUERY)
    sam2 = engine.model.sam2
    first, second = (result.sam2_features[i] for i in result.sampled_indices[:2])
    assert first["convs"] == "original"
    with torch.no_grad():
        expected = with_decoder_convs(encode_image(sam2, result.sam2_pixels[0][None]), sam2.sam_mask_decoder)
    for got, want in zip(first["backbone_fpn"], expected["backbone_fpn"], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert all(a is b for a, b in zip(first["vision_pos_enc"], second["vision_pos_enc"], strict=True))
