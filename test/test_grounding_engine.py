"""Behaviour of GroundingEngine.ground: results, options, influence of inputs, errors."""

import numpy as np
import pytest
import torch

from sa2va_i_ros.errors import Cancelled, FramesError, QueryError
from sa2va_i_ros.grounding.engine import GroundingEngine, GroundingOptions
from sa2va_i_ros.testing.tiny_sa2va import write_tiny_checkpoint

QUERY = "the cup left of the bowl"


def test_result_holds_one_mask_per_sampled_frame(engine, frames):
    r = engine.ground(frames, QUERY)
    assert r.sampled_indices == [0, 2, 4, 6, 9]
    # the answer is the decoded tokens less the stop word; one mask set per [SEG] it holds
    assert r.raw_answer == r.answer + "<|im_end|>" and r.reason == "" and r.has_mask
    assert r.masks.shape == (r.answer.count("[SEG]"), 5, 120, 160) and r.masks.dtype == bool
    assert 0 < r.masks.mean() < 1
    assert r.seg_embeddings.shape == (1, engine.model.sam2.hidden_dim)
    assert set(r.sam2_features) == set(r.sampled_indices) == set(r.sam2_pixels)
    assert set(r.timings_ms) >= {"preprocess", "language", "decode", "total"}


def test_duplicated_samples_are_decoded_like_sa2va_i(engine, frames):
    r = engine.ground(frames[:3], QUERY, GroundingOptions(num_frames=5))
    assert r.sampled_indices == [0, 0, 1, 1, 2]
    assert r.masks.shape[1] == 5
    np.testing.assert_array_equal(r.masks[0, 0], r.masks[0, 1])
    assert sorted(r.prompts()) == [0, 1, 2]


def test_first_sampling_and_single_frame(engine, frames):
    assert engine.ground(frames, QUERY, GroundingOptions(num_frames=3, sampling="first")).sampled_indices == [0, 1, 2]
    one = engine.ground(frames[:1], QUERY, GroundingOptions(num_frames=1))
    assert one.sampled_indices == [0] and one.masks.shape == (1, 1, 120, 160)


def test_the_image_encoder_runs_once_per_distinct_sampled_frame(engine, frames):
    calls = []
    hook = engine.model.sam2.image_encoder.register_forward_hook(lambda m, inp, out: calls.append(inp[0].shape[0]))
    try:
        r = engine.ground(frames, QUERY, GroundingOptions(num_frames=12))
    finally:
        hook.remove()
    assert len(r.sampled_indices) == 12 and calls == [1] * 10  # one frame at a time, each once


def test_images_and_query_move_the_seg_embedding(engine, frames):
    """Wiring check: the [SEG] state must depend on the image tokens and on the query."""
    base = engine.ground(frames, QUERY).seg_embeddings
    other_frames = [np.ascontiguousarray(f[::-1]) for f in frames]
    moved_by_images = (engine.ground(other_frames, QUERY).seg_embeddings - base).abs().max()
    moved_by_query = (engine.ground(frames, "the bowl").seg_embeddings - base).abs().max()
    scale = base.abs().max()
    assert moved_by_images > 0.05 * scale and moved_by_query > 0.05 * scale
    torch.testing.assert_close(engine.ground(frames, QUERY).seg_embeddings, base, rtol=0, atol=0)


@pytest.mark.parametrize("query, message", [
    ("", "empty"), ("   \n\t", "empty"), ("the [SEG] cup", "reserved"), ("<image> cup", "reserved"),
    ("the <IMG_CONTEXT>", "reserved"), ("x<|im_end|>", "reserved")])
def test_bad_queries_are_refused(engine, frames, query, message):
    with pytest.raises(QueryError, match=message):
        engine.ground(frames, query)


def test_a_query_too_long_for_the_language_model_is_refused(engine, frames):
    with pytest.raises(QueryError, match="positions"):
        engine.ground(frames[:1], "é" * 20000, GroundingOptions(num_frames=1))


def test_bad_frames_are_refused(engine, frames):
    with pytest.raises(FramesError, match="no frames"):
        engine.ground([], QUERY)
    with pytest.raises(FramesError, match="one size"):
        engine.ground([frames[0], frames[1][:100]], QUERY)
    with pytest.raises(FramesError, match="uint8"):
        engine.ground([frames[0].astype(np.float32)], QUERY)
    with pytest.raises(FramesError, match=r"\(H, W, 3\)"):
        engine.ground([frames[0][..., 0]], QUERY)
    with pytest.raises(FramesError, match="num_frames"):
        engine.ground(frames, QUERY, GroundingOptions(num_frames=0))
    with pytest.raises(FramesError, match="sampling"):
        engine.ground(frames, QUERY, GroundingOptions(sampling="random"))


def test_an_answer_without_seg_gives_no_mask_and_a_reason(tmp_path, frames):
    ckpt = write_tiny_checkpoint(tmp_path / "no_seg", answer="Sure.")
    r = GroundingEngine.load(str(ckpt)).ground(frames, QUERY)
    assert r.answer == "Sure." and not r.has_mask and r.masks is None
    assert "without a [SEG] token" in r.reason and "'Sure.'" in r.reason
    with pytest.raises(ValueError, match="no mask"):
        r.prompts()


def test_progress_stages_and_cancel(engine, frames):
    stages = []
    engine.ground(frames, QUERY, progress=lambda stage, fraction, detail: stages.append((stage, fraction)))
    assert [s for s, _ in stages][:3] == ["sampling", "language_model", "decoding"]
    assert all(0 <= f <= 1 for _, f in stages)
    with pytest.raises(Cancelled):
        engine.ground(frames, QUERY, cancelled=lambda: True)


def test_devices_and_dtypes_are_checked(tiny_checkpoint):
    for dtype in ("float16", "bfloat16"):
        with pytest.raises(ValueError, match="needs a CUDA device"):
            GroundingEngine.load(str(tiny_checkpoint), dtype=dtype)
    with pytest.raises(ValueError, match="unknown dtype"):
        GroundingEngine.load(str(tiny_checkpoint), dtype="int8")
    with pytest.raises(ValueError, match="unknown device"):
        GroundingEngine.load(str(tiny_checkpoint), device="tpu:x")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            GroundingEngine.load(str(tiny_checkpoint), device="cuda")
