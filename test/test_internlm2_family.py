"""Sa2VA-8B/26B layouts: InternLM2 as native Llama, InternViT-6B as native InternVL, through the normal loader.

The references below are written from the official modules' definitions
(``modeling_internlm2.py``: grouped ``wqkv`` rearranged ``(h gs d)``, rotate-half
RoPE, RMSNorm in float32; ``modeling_intern_vit.py``: q/k RMSNorm over the full
width before the head split, layer scale), on the tensors read from disk with
safetensors, not through our key map or transformers' classes.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from sa2va_i_ros.grounding.engine import GroundingEngine, GroundingOptions
from sa2va_i_ros.model import prompt
from sa2va_i_ros.model.checkpoint import internlm2
from sa2va_i_ros.offline.pipeline import VideoPipeline
from sa2va_i_ros.testing.tiny_internlm2 import write_tiny_internlm2_checkpoint

QUERY = "the cup left of the bowl"


@pytest.fixture(scope="module")
def ckpt_8b(tmp_path_factory):
    return write_tiny_internlm2_checkpoint(tmp_path_factory.mktemp("tiny_8b"), vision="300m")


@pytest.fixture(scope="module")
def ckpt_26b(tmp_path_factory):
    return write_tiny_internlm2_checkpoint(tmp_path_factory.mktemp("tiny_26b"), vision="6b")


@pytest.fixture(scope="module")
def engine_8b(ckpt_8b):
    return GroundingEngine.load(str(ckpt_8b))


@pytest.fixture(scope="module")
def engine_26b(ckpt_26b):
    return GroundingEngine.load(str(ckpt_26b))


def disk(directory):
    out = {}
    for f in sorted(directory.glob("*.safetensors")):
        out.update({k: v.float() for k, v in load_file(str(f)).items()})
    return out


def test_the_8b_layout_has_internlm2_names(ckpt_8b, ckpt_26b):
    names = set(json.loads((ckpt_8b / "model.safetensors.index.json").read_text())["weight_map"])
    layer = "language_model.model.layers.1."
    for n in ("language_model.model.tok_embeddings.weight", "language_model.output.weight",
              "language_model.model.norm.weight", layer + "attention.wqkv.weight", layer + "attention.wo.weight",
              layer + "feed_forward.w1.weight", layer + "feed_forward.w2.weight", layer + "feed_forward.w3.weight",
              layer + "attention_norm.weight", layer + "ffn_norm.weight",
              "grounding_encoder.sam2_model.sam_mask_decoder.output_upscaling.0.weight"):
        assert n in names, n
    lm = [n for n in names if n.startswith("language_model.")]
    assert not any("q_proj" in n or "embed_tokens" in n or "lm_head" in n for n in lm)
    cfg = json.loads((ckpt_8b / "config.json").read_text())
    assert cfg["llm_config"]["architectures"] == ["InternLM2ForCausalLM"] and cfg["template"] == "internlm2_chat"
    six = json.loads((ckpt_26b / "config.json").read_text())["vision_config"]
    assert (six["norm_type"], six["qk_normalization"], six["qkv_bias"]) == ("rms_norm", True, False)
    six_names = set(json.loads((ckpt_26b / "model.safetensors.index.json").read_text())["weight_map"])
    assert "vision_model.encoder.layers.0.attn.q_norm.weight" in six_names
    assert "vision_model.encoder.layers.0.attn.qkv.bias" not in six_names


@pytest.mark.parametrize("heads, kv_heads, dim", [(4, 2, 8), (32, 8, 4), (6, 6, 3), (25, 1, 2)])
def test_the_wqkv_split_follows_the_grouped_layout(heads, kv_heads, dim):
    g = heads // kv_heads
    w = torch.randn(kv_heads * (g + 2) * dim, 5)
    grouped = w.view(kv_heads, g + 2, dim, 5)  # modeling_internlm2: rearrange '(h gs d)', gs = G + 2
    expected = {"q": grouped[:, :g].reshape(-1, 5), "k": grouped[:, g].reshape(-1, 5),
                "v": grouped[:, g + 1].reshape(-1, 5)}
    for part, pieces in internlm2.wqkv_pieces(heads, kv_heads, dim).items():
        rows = torch.cat([w[s:s + n] for s, n, _ in sorted(pieces, key=lambda p: p[2])])
        assert torch.equal(rows, expected[part]), part
    assert torch.equal(internlm2.fuse_wqkv(expected["q"], expected["k"], expected["v"], heads, kv_heads), w)


def _rms(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def internlm2_reference(t, cfg, x):
    """InternLM2Model.forward on input embeddings x (1, L, H): last hidden state after the final norm."""
    llm = cfg["llm_config"]
    heads, kv, hidden = llm["num_attention_heads"], llm["num_key_value_heads"], llm["hidden_size"]
    g, d, eps, length = heads // kv, hidden // heads, llm["rms_norm_eps"], x.shape[1]
    inv = 1.0 / (llm["rope_theta"] ** (torch.arange(0, d, 2).float() / d))
    freqs = torch.outer(torch.arange(length).float(), inv)
    cos, sin = torch.cat([freqs, freqs], -1).cos(), torch.cat([freqs, freqs], -1).sin()

    def rope(v):
        return v * cos + torch.cat([-v[..., d // 2:], v[..., : d // 2]], -1) * sin

    causal = torch.full((length, length), float("-inf")).triu(1)
    p = "language_model.model."
    x = x[0]
    for i in range(llm["num_hidden_layers"]):
        layer = f"{p}layers.{i}."
        h = _rms(x, t[layer + "attention_norm.weight"], eps)
        qkv = (h @ t[layer + "attention.wqkv.weight"].T).view(length, kv, g + 2, d)
        q = rope(qkv[:, :, :g].reshape(length, heads, d).transpose(0, 1))
        k = rope(qkv[:, :, -2].transpose(0, 1)).repeat_interleave(g, 0)
        v = qkv[:, :, -1].transpose(0, 1).repeat_interleave(g, 0)
        att = torch.softmax(q @ k.transpose(1, 2) / d**0.5 + causal, -1) @ v
        x = x + att.transpose(0, 1).reshape(length, hidden) @ t[layer + "attention.wo.weight"].T
        h = _rms(x, t[layer + "ffn_norm.weight"], eps)
        mlp = F.silu(h @ t[layer + "feed_forward.w1.weight"].T) * (h @ t[layer + "feed_forward.w3.weight"].T)
        x = x + mlp @ t[layer + "feed_forward.w2.weight"].T
    return _rms(x, t[p + "norm.weight"], eps)[None]


def test_the_language_model_equals_internlm2(ckpt_8b, engine_8b):
    t, cfg = disk(ckpt_8b), json.loads((ckpt_8b / "config.json").read_text())
    x = torch.randn(1, 9, cfg["llm_config"]["hidden_size"], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = engine_8b.model.language_model.model(inputs_embeds=x).last_hidden_state
        logits = engine_8b.model.language_model.lm_head(ours)
    expected = internlm2_reference(t, cfg, x)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits, expected @ t["language_model.output.weight"].T, rtol=1e-5, atol=1e-5)
    assert engine_8b.model.language_model.model.rotary_emb.inv_freq.dtype == torch.float32


def internvit_6b_reference(t, cfg, pixels):
    """InternVisionModel.forward (InternViT-6B options): last hidden state."""
    v = cfg["vision_config"]
    heads, hidden, eps = v["num_attention_heads"], v["hidden_size"], v["layer_norm_eps"]
    d = hidden // heads
    e = "vision_model.embeddings."
    x = F.conv2d(pixels, t[e + "patch_embedding.weight"], t[e + "patch_embedding.bias"], stride=v["patch_size"])
    x = torch.cat([t[e + "class_embedding"].expand(1, 1, -1), x.flatten(2).transpose(1, 2)], 1)
    x = (x + t[e + "position_embedding"])[0]
    n = x.shape[0]
    for i in range(v["num_hidden_layers"]):
        lp = f"vision_model.encoder.layers.{i}."
        h = _rms(x, t[lp + "norm1.weight"], eps)
        q, k, val = (h @ t[lp + "attn.qkv.weight"].T).chunk(3, -1)  # qkv_bias False
        q, k = _rms(q, t[lp + "attn.q_norm.weight"], eps), _rms(k, t[lp + "attn.k_norm.weight"], eps)  # full width
        q, k, val = (z.view(n, heads, d).transpose(0, 1) for z in (q, k, val))
        att = (torch.softmax((q * d**-0.5) @ k.transpose(1, 2), -1) @ val).transpose(0, 1).reshape(n, hidden)
        x = x + (att @ t[lp + "attn.proj.weight"].T + t[lp + "attn.proj.bias"]) * t[lp + "ls1"]
        h = _rms(x, t[lp + "norm2.weight"], eps)
        mlp = F.gelu(h @ t[lp + "mlp.fc1.weight"].T + t[lp + "mlp.fc1.bias"]) @ t[lp + "mlp.fc2.weight"].T
        x = x + (mlp + t[lp + "mlp.fc2.bias"]) * t[lp + "ls2"]
    return x[None]


def test_the_6b_vision_tower_equals_internvit_6b(ckpt_26b, engine_26b):
    t, cfg = disk(ckpt_26b), json.loads((ckpt_26b / "config.json").read_text())
    pixels = torch.randn(1, 3, 448, 448, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = engine_26b.model.vision_tower(pixel_values=pixels).last_hidden_state
    torch.testing.assert_close(ours, internvit_6b_reference(t, cfg, pixels), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("which", ["engine_8b", "engine_26b"])
def test_tiny_8b_and_26b_layouts_ground(which, request, frames):
    engine = request.getfixturevalue(which)
    r = engine.ground(frames, QUERY)
    assert r.answer == "Sure, [SEG]." and r.has_mask and r.reason == ""
    assert r.masks.shape == (1, 5, 120, 160) and 0 < r.masks.mean() < 1
    assert np.isfinite(r.seg_embeddings.numpy()).all()
    other = engine.ground([np.ascontiguousarray(f[::-1]) for f in frames], QUERY).seg_embeddings
    assert (other - r.seg_embeddings).abs().max() > 1e-3  # the images reach the [SEG] state


FIXTURES = Path(__file__).parent / "fixtures" / "sa2va_internlm2"


def _digest(directory):
    h = hashlib.sha256()
    for f in [*sorted(directory.glob("*.safetensors")), directory / "tokenizer.model", directory / "config.json"]:
        h.update(f.read_bytes())
    return h.hexdigest()


def _iou(a, b):
    union = (a | b).sum(axis=(-1, -2))
    return np.where(union == 0, 1.0, (a & b).sum(axis=(-1, -2)) / np.maximum(union, 1))


@pytest.mark.parametrize("layout, ckpt, which", [("official_8b_layout.npz", "ckpt_8b", "engine_8b"),
                                                 ("official_26b_layout.npz", "ckpt_26b", "engine_26b")])
def test_equal_to_the_official_code(layout, ckpt, which, request, frames):
    """Against Sa2VA-i's own HF code run on the same checkpoint (fixtures/sa2va_internlm2/README.md)."""
    expected = json.loads((FIXTURES / "checkpoints.json").read_text())[layout]["sha256"]
    assert _digest(request.getfixturevalue(ckpt)) == expected, "the tiny checkpoint is not the one the fixture used"
    ref = np.load(FIXTURES / layout)
    assert int(np.stack(frames).astype(np.int64).sum()) == int(ref["frames_sum"])
    engine = request.getfixturevalue(which)
    for n in (5, 12):
        p = f"n{n}_"
        r = engine.ground(frames, QUERY, GroundingOptions(num_frames=n))
        assert r.sampled_indices == ref[p + "sample_idx"].tolist()
        text = prompt.build_prompt(QUERY, len(set(r.sampled_indices)), engine.cfg.template)
        assert engine.tokenizer.encode(text) == ref[p + "prompt_ids"].tolist()
        assert r.token_ids == ref[p + "generated_ids"].tolist()
        torch.testing.assert_close(r.seg_embeddings, torch.from_numpy(ref[p + "seg_embeddings"]), rtol=0, atol=1e-4)
        assert _iou(r.masks[0], ref[p + "keyframe_masks"][0]).min() >= 0.999
        video = VideoPipeline(engine).run(frames, QUERY, num_frames=n)  # + SAM2 propagation over all frames
        assert _iou(np.stack(video.masks), ref[p + "video_masks"][0]).min() >= 0.999


def test_the_tiny_checkpoint_tool_writes_both_layouts(tmp_path):
    from sa2va_i_ros.cli import tiny_checkpoint

    assert tiny_checkpoint.main([str(tmp_path / "c26"), "--family", "internlm2", "--vision", "6b"]) == 0
    cfg = json.loads((tmp_path / "c26" / "config.json").read_text())
    assert cfg["llm_config"]["architectures"] == ["InternLM2ForCausalLM"]
    assert cfg["vision_config"]["qk_normalization"] is True
    assert (tmp_path / "c26" / "tokenizer.model").is_file()
