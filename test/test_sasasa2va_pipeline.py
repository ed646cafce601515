"""SaSaSa2VA's pipeline on a tiny checkpoint in its official layout, against independent references.

The references are sam2's own ``SAM2Base._forward_sam_heads`` (with the language
token appended to its sparse prompt: how SaSaSa2VA's copy of it differs) and
hand computations of the clip images; the official code's own outputs are
compared in test_sasasa2va_official.py.
"""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import safe_open

from sa2va_i_ros.errors import FramesError, QueryError, UnsupportedModelError
from sa2va_i_ros.grounding.engine import GroundingEngine
from sa2va_i_ros.grounding.sasasa2va.images import clip_images, grid_image
from sa2va_i_ros.grounding.sasasa2va.pipeline import NoSegmentationError, SaSaSa2VAPipeline
from sa2va_i_ros.model import prompt as P
from sa2va_i_ros.model.preprocess import mllm_pixels, sam2_pixels
from sa2va_i_ros.model.sam2_model import encode_image, with_decoder_convs
from sa2va_i_ros.offline.pipeline import VideoPipeline, load_video_pipeline
from sa2va_i_ros.testing.tiny_sasasa2va import write_tiny_sasasa2va

QUERY = "the cup left of the bowl"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_tiny_sasasa2va(tmp_path_factory.mktemp("tiny_sasasa2va"))


@pytest.fixture(scope="module")
def pipe(ckpt):
    return load_video_pipeline(str(ckpt))


def video(n, seed=3, size=(48, 64)):
    rng = np.random.default_rng(seed)
    out = []
    for t in range(n):
        f = rng.integers(0, 60, (*size, 3), dtype=np.uint8)
        f[10:30, 5 + t % 30:25 + t % 30] = (220, 40, 40)
        out.append(f)
    return out


# -- checkpoint ------------------------------------------------------------------------------------
def test_the_normal_loader_picks_the_sasasa2va_pipeline_and_its_single_decoder(pipe, ckpt):
    assert isinstance(pipe, SaSaSa2VAPipeline) and pipe.engine.cfg.kind == "sasasa2va"
    assert not hasattr(pipe.model, "finetuned_decoder")
    assert pipe.engine.cfg.template.name == "phi3_chat"
    disk = {}
    for name in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"):
        with safe_open(str(ckpt / name), framework="pt") as f:
            disk.update({k: f.get_tensor(k) for k in f.keys()})  # noqa: SIM118
    decoder = {k: v for k, v in disk.items() if ".sam_mask_decoder" in k}
    assert decoder and not any("_modified" in k for k in decoder)
    ours = pipe.model.sam2.sam_mask_decoder.state_dict()
    for k, v in decoder.items():
        torch.testing.assert_close(ours[k.split("sam_mask_decoder.")[1]], v.float(), rtol=0, atol=0)


def test_sa2va_i_engine_refuses_a_sasasa2va_checkpoint_and_vice_versa(ckpt, tiny_checkpoint):
    with pytest.raises(UnsupportedModelError, match="SaSaSa2VA checkpoint"):
        GroundingEngine.load(str(ckpt))
    with pytest.raises(UnsupportedModelError, match="not a SaSaSa2VA"):
        SaSaSa2VAPipeline.load(str(tiny_checkpoint))


def test_samurai_mode_is_refused_before_the_weights_load(ckpt, tmp_path):
    """config.json's samurai_mode on: SAMURAI tracking is not ported; only config.json is needed to say so."""
    (tmp_path / "config.json").write_text(json.dumps({**json.loads((ckpt / "config.json").read_text()),
                                                      "samurai_mode": True}))
    with pytest.raises(UnsupportedModelError, match="samurai_mode is on"):
        SaSaSa2VAPipeline.load(str(tmp_path))


# -- language-model input --------------------------------------------------------------------------
def test_grid_pastes_nine_frames_row_major_at_original_size():
    frames = [np.full((4, 6, 3), 10 * k, np.uint8) for k in range(9)]
    grid = grid_image(frames)
    assert grid.shape == (12, 18, 3)
    for k in range(9):
        r, c = k // 3, k % 3
        assert (grid[4 * r:4 * r + 4, 6 * c:6 * c + 6] == 10 * k).all()


def test_clip_images_are_key_frame_then_grid_per_clip():
    frames = [np.full((4, 6, 3), k, np.uint8) for k in range(100)]
    sampled = list(range(99, -1, -1))
    images = clip_images(frames, sampled)
    assert len(images) == 20
    assert (images[0] == 99).all() and images[0].shape == (4, 6, 3)
    assert images[1].shape == (12, 18, 3) and (images[1][:4, :6] == 98).all() and (images[1][8:, 12:] == 90).all()
    assert (images[18] == 9).all() and (images[19][8:, 12:] == 0).all()
    # the grid goes through the usual 448 bicubic squash: one PIL resize of the 3W x 3H canvas
    expected = np.asarray(Image.fromarray(images[1]).resize((448, 448), Image.Resampling.BICUBIC), np.float64)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(mllm_pixels(images[1]).numpy(),
                               ((expected / 255 - mean) / std).transpose(2, 0, 1), atol=2e-6)


def test_prompt_holds_twenty_image_blocks_of_256_tokens(pipe):
    text = P.build_prompt(QUERY, 20, pipe.engine.cfg.template)
    assert text.startswith("<|user|>\n<img>") and text.endswith("Please segment the cup left of the bowl."
                                                                  "<|end|>\n<|assistant|>\n")
    ids = pipe.engine.tokenizer.encode(text)
    assert ids.count(pipe.engine.img_context_id) == 5120
    assert ids.count(pipe.engine.tokenizer.convert_tokens_to_ids("<img>")) == 20


# -- decoding --------------------------------------------------------------------------------------
def reference_frame_logits(pipe, frame, embeddings):
    """sam2's own _forward_sam_heads on a fresh conditioning frame, the language token appended to its
    sparse prompt as SaSaSa2VA's copy does; one row per embedding (k, C): low-res logits -> S, and the
    object scores."""
    sam2 = pipe.model.sam2
    size = sam2.image_size
    k = embeddings.shape[0]
    with torch.no_grad():
        raw = encode_image(sam2, sam2_pixels(frame, size)[None])
        backbone = with_decoder_convs(raw, sam2.sam_mask_decoder)
        _, feats, _, sizes = sam2._prepare_backbone_features(backbone)
        high_res = [x.permute(1, 2, 0).view(1, x.size(2), *s).expand(k, -1, -1, -1)
                    for x, s in zip(feats[:-1], sizes[:-1], strict=True)]
        pix = (feats[-1] + sam2.no_mem_embed).permute(1, 2, 0).view(1, sam2.hidden_dim, *sizes[-1])
        encoder = sam2.sam_prompt_encoder
        original_forward = encoder.forward

        def with_language(*args, **kwargs):
            sparse, dense = original_forward(*args, **kwargs)
            return torch.cat([sparse, embeddings.reshape(k, 1, -1)], dim=1), dense

        encoder.forward = with_language
        try:
            out = sam2._forward_sam_heads(pix.expand(k, -1, -1, -1), high_res_features=high_res,
                                          multimask_output=True)
        finally:
            del encoder.forward
    low_res_best, object_score = out[3], out[6]
    return F.interpolate(low_res_best, size=(size, size), mode="bilinear", align_corners=False), object_score


def to_mask(logits, h, w):
    return (F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)[0, 0] > 0).numpy()


def test_uniform_decodes_each_frame_alone_with_its_clip_and_gating(pipe):
    frames = video(7)
    r = pipe.run(frames, QUERY, mode="uniform")
    assert r.answer == "Sure, [SEG]." and r.num_seg == 1 and r.propagated == []
    assert r.sampled_indices == [i * 7 // 100 for i in range(100)]
    assert len(r.masks) == 7 and all(m.shape == (48, 64) and m.dtype == bool for m in r.masks)
    clips = r.clip_prompts
    assert clips.shape == (10, pipe.model.sam2.hidden_dim)
    torch.testing.assert_close(clips, clips[:1].expand(10, -1))  # one [SEG]: repeated for every clip
    for f in range(7):
        logits, score = reference_frame_logits(pipe, frames[f], clips[10 * f // 7][None])
        np.testing.assert_array_equal(r.masks[f], to_mask(logits, 48, 64))
        assert r.scores[f] == pytest.approx(float(score.sigmoid()), abs=1e-5)


def test_uniform_plus_averages_the_logits_of_duplicated_positions(pipe, monkeypatch):
    """Distinct clip prompts (the tiny model says one [SEG]): frame f's mask is mean logit > 0 over
    the positions i with S[i] = f, each with clip i // 10."""
    from sa2va_i_ros.grounding.sasasa2va import pipeline as module

    gen = torch.Generator().manual_seed(5)
    distinct = torch.randn(10, pipe.model.sam2.hidden_dim, generator=gen)
    monkeypatch.setattr(module, "clip_prompts", lambda seg: distinct)
    frames = video(3)
    r = pipe.run(frames, QUERY, mode="uniform_plus")
    s = [i * 3 // 100 for i in range(100)]
    for f in range(3):
        positions = [i for i in range(100) if s[i] == f]
        logits, _ = reference_frame_logits(pipe, frames[f], distinct[[i // 10 for i in positions]])
        np.testing.assert_array_equal(r.masks[f], to_mask(logits.mean(0, keepdim=True), 48, 64))
    # not the same as decoding each frame once with the uniform mode's clip
    u = pipe.run(frames, QUERY, mode="uniform")
    assert any(not np.array_equal(a, b) for a, b in zip(r.masks, u.masks, strict=True))


# -- errors ----------------------------------------------------------------------------------------
def test_official_crash_cases_are_clear_errors(pipe, tmp_path):
    frames = video(5)
    with pytest.raises(QueryError, match="'\\?'"):
        pipe.run(frames, "which cup is closest?")
    with pytest.raises(FramesError, match="miss frame"):
        pipe.run(frames, QUERY, mode="q_frame", q_frame=[0] * 50 + [1] * 50)
    with pytest.raises(FramesError, match="unknown SaSaSa2VA mode"):
        pipe.run(frames, QUERY, mode="selective_averaging")
    no_seg = load_video_pipeline(str(write_tiny_sasasa2va(tmp_path / "no_seg", answer="Sure.")))
    with pytest.raises(NoSegmentationError, match="without a \\[SEG\\]"):
        no_seg.run(frames, QUERY)


def test_sa2va_i_pipeline_refuses_sasasa2va_options(engine, frames):
    with pytest.raises(ValueError, match="SaSaSa2VA modes"):
        VideoPipeline(engine).segment(frames, QUERY, mode="uniform")


def test_more_than_ten_seg_keep_the_first_ten_fewer_repeat_the_last(tmp_path_factory):
    """The answer rig converted to SaSaSa2VA's layout says [SEG] until max_new_tokens: k tokens give k - 1
    states (the last [SEG] is never fed back), so 13 tokens give 12 states and 4 tokens give 3."""
    from sa2va_i_ros.testing.answer_rig import QUERIES, write_answer_rig
    from sa2va_i_ros.testing.tiny_sasasa2va import to_sasasa2va

    rig = load_video_pipeline(str(to_sasasa2va(write_answer_rig(tmp_path_factory.mktemp("rig")), "qwen_chat")))
    frames = video(4)
    many = rig.run(frames, QUERIES["endless_seg"], max_new_tokens=13)
    assert many.num_seg == 12 and many.seg_embeddings.shape[0] == 12
    torch.testing.assert_close(many.clip_prompts, many.seg_embeddings[:10].float(), rtol=0, atol=0)
    assert len({tuple(c.tolist()) for c in many.clip_prompts}) == 10  # ten distinct clip prompts
    few = rig.run(frames, QUERIES["endless_seg"], max_new_tokens=4)
    assert few.num_seg == 3
    torch.testing.assert_close(few.clip_prompts[:3], few.seg_embeddings, rtol=0, atol=0)
    torch.testing.assert_close(few.clip_prompts[3:], few.seg_embeddings[2:].expand(7, -1), rtol=0, atol=0)
