"""Answers beyond "Sure, [SEG].": what the engine does with two [SEG], [SEG] last, no [SEG], no end.

The answer rig (testing/answer_rig.py) answers through ordinary greedy
decoding, chosen by a word of the query. Its answers are first checked with
transformers' own ``generate`` (not the engine's decoding loop); the engine's
[SEG] vectors are checked against one full forward pass over prompt + answer.
"""

import json
from pathlib import Path

import pytest
import torch
from transformers import GenerationConfig

from sa2va_i_ros.cli import tiny_checkpoint
from sa2va_i_ros.grounding.engine import GroundingOptions
from sa2va_i_ros.model import preprocess
from sa2va_i_ros.model import prompt as P
from sa2va_i_ros.model.vision_features import image_embeddings
from sa2va_i_ros.testing.answer_rig import ANSWERS, QUERIES

SEG = P.SEG_TOKEN


def _prompt_embeds(engine, frames, query, unique):
    ids = engine.tokenizer.encode(P.build_prompt(query, len(unique), engine.cfg.template))
    vit = image_embeddings(engine.model, torch.stack([preprocess.mllm_pixels(frames[i]) for i in unique]))
    return ids, vit


@torch.no_grad()
def _full_forward_seg_embeddings(engine, frames, query, unique, answer_ids):
    """text_hidden_fcs of the last-layer state AT every [SEG] of the answer, from one forward pass."""
    ids, vit = _prompt_embeds(engine, frames, query, unique)
    full = torch.tensor([ids + answer_ids])
    embeds = engine.model.language_model.get_input_embeddings()(full).clone()
    embeds[0, full[0] == engine.img_context_id] = vit.reshape(-1, vit.shape[-1])
    states = engine.model.language_model(inputs_embeds=embeds, output_hidden_states=True).hidden_states[-1][0]
    positions = [len(ids) + k for k, t in enumerate(answer_ids) if t == engine.seg_id]
    return engine.model.text_hidden_fcs(states[positions])


@torch.no_grad()
def _hf_generate(engine, frames, query, max_new_tokens):
    """Greedy answer through transformers' generate (eos = <|im_end|>)."""
    ids, vit = _prompt_embeds(engine, frames, query, list(range(len(frames))))
    input_ids = torch.tensor([ids])
    embeds = engine.model.language_model.get_input_embeddings()(input_ids).clone()
    embeds[0, input_ids[0] == engine.img_context_id] = vit.reshape(-1, vit.shape[-1])
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=engine.eos_id,
                              pad_token_id=engine.eos_id)
    out = engine.model.language_model.generate(inputs_embeds=embeds, attention_mask=torch.ones_like(input_ids),
                                               generation_config=config)
    return engine.tokenizer.decode(out[0])


@pytest.mark.parametrize("case, expected", [
    ("one_seg", "Sure, [SEG].<|im_end|>"),
    ("two_seg", "Sure, [SEG] and [SEG].<|im_end|>"),
    ("seg_last", "Sure, [SEG]<|im_end|>"),
    ("no_seg", "I cannot find it.<|im_end|>"),
    ("endless", " the" * 10),
    ("endless_seg", SEG * 10),
])
def test_the_rig_answers_by_query_word_through_transformers_generate(rig_engine, frames, case, expected):
    assert _hf_generate(rig_engine, frames[:2], QUERIES[case], max_new_tokens=10) == expected


def test_the_first_listed_trigger_word_wins(rig_engine, frames):
    assert rig_engine.ground(frames[:2], "the dog and the cup", GroundingOptions(num_frames=2)).answer == \
        "Sure, [SEG] and [SEG]."
    assert rig_engine.ground(frames[:2], "the closest dog", GroundingOptions(num_frames=2)).answer == "Sure, [SEG]"


def test_two_seg_gives_one_embedding_and_mask_set_per_seg(rig_engine, frames):
    r = rig_engine.ground(frames, QUERIES["two_seg"])
    assert r.answer == "Sure, [SEG] and [SEG]." and r.reason == "" and r.has_mask
    assert r.seg_embeddings.shape == (2, rig_engine.model.sam2.hidden_dim)
    assert r.masks.shape == (2, 5, 120, 160)
    answer_ids = rig_engine.tokenizer.encode(r.raw_answer)
    ref = _full_forward_seg_embeddings(rig_engine, frames, QUERIES["two_seg"], sorted(set(r.sampled_indices)),
                                       answer_ids)
    torch.testing.assert_close(r.seg_embeddings, ref, atol=2e-5, rtol=1e-4)
    assert (r.seg_embeddings[0] - r.seg_embeddings[1]).abs().max() > 1e-2  # two positions, two vectors
    # each [SEG]'s masks come from its own embedding
    features, _ = rig_engine._encode(r.sam2_pixels)
    for k in range(2):
        own = rig_engine._decode(features, r.sampled_indices, ref[k], 120, 160)
        assert (own == r.masks[k]).mean() > 0.999
    assert (r.masks[0] != r.masks[1]).any()


def test_seg_right_before_the_stop_word_has_its_state(rig_engine, frames):
    r = rig_engine.ground(frames, QUERIES["seg_last"])
    assert r.raw_answer == "Sure, [SEG]<|im_end|>" and r.answer == "Sure, [SEG]"
    assert r.has_mask and r.masks.shape == (1, 5, 120, 160)
    ref = _full_forward_seg_embeddings(rig_engine, frames, QUERIES["seg_last"], sorted(set(r.sampled_indices)),
                                       rig_engine.tokenizer.encode(r.raw_answer))
    torch.testing.assert_close(r.seg_embeddings, ref, atol=2e-5, rtol=1e-4)


def test_no_seg_gives_no_mask_and_says_why(rig_engine, frames):
    r = rig_engine.ground(frames, QUERIES["no_seg"])
    assert r.answer == "I cannot find it." and not r.has_mask and r.masks is None
    assert r.seg_embeddings.shape[0] == 0
    assert "without a [SEG] token" in r.reason and "'I cannot find it.'" in r.reason
    with pytest.raises(ValueError, match="no mask"):
        r.prompts()
    with pytest.raises(ValueError, match="no mask"):
        r.tracker_grounding(frames, range(len(frames)))


def test_an_endless_answer_stops_at_max_new_tokens(rig_engine, frames):
    r = rig_engine.ground(frames, QUERIES["endless"], GroundingOptions(max_new_tokens=7))
    assert r.answer == " ".join(["the"] * 7) and not r.has_mask
    assert "max_new_tokens (7)" in r.reason


def test_max_new_tokens_on_a_seg_leaves_that_seg_without_a_state(rig_engine, frames):
    """Sa2VA never feeds the final token back: 4 generated [SEG] give 3 states (hence 3 mask sets)."""
    r = rig_engine.ground(frames, QUERIES["endless_seg"], GroundingOptions(max_new_tokens=4))
    assert r.raw_answer == SEG * 4
    assert r.seg_embeddings.shape[0] == 3 and r.masks.shape[0] == 3
    ref = _full_forward_seg_embeddings(rig_engine, frames, QUERIES["endless_seg"], sorted(set(r.sampled_indices)),
                                       rig_engine.tokenizer.encode(SEG * 3))
    torch.testing.assert_close(r.seg_embeddings, ref, atol=2e-5, rtol=1e-4)


def test_tiny_checkpoint_cli_writes_the_rig(tmp_path, capsys):
    assert tiny_checkpoint.main([str(tmp_path / "rig"), "--answer-rig"]) == 0
    assert "answer-rig" in capsys.readouterr().out
    assert (tmp_path / "rig" / "config.json").is_file()
    with pytest.raises(SystemExit):
        tiny_checkpoint.main([str(tmp_path / "x"), "--answer-rig", "--plain-sa2va"])
    assert all(a.trigger is None or a.trigger in QUERIES[a.name] for a in ANSWERS)


def test_video_cli_in_each_answer_case(answer_rig, frames, tmp_path):
    """sa2va-i-video: masks where the answer has a [SEG], empty masks and the reason where not; never an error."""
    from PIL import Image

    from sa2va_i_ros.cli import video

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames[:4]):
        Image.fromarray(f).save(folder / f"{i:05d}.png")
    cases = ["two_seg", "seg_last", "no_seg", "endless"]
    args = ["--model", str(answer_rig), "--input", str(folder), "--out", str(tmp_path / "out"), "--num-frames", "2",
            "--max-new-tokens", "10", "--no-overlay"]
    assert video.main(args + [a for c in cases for a in ("--query", QUERIES[c])]) == 0
    report = {q["query"]: q for q in json.loads((tmp_path / "out" / "result.json").read_text())["queries"]}
    two, last, none, endless = (report[QUERIES[c]] for c in cases)
    assert report and all("error" not in q for q in report.values())
    assert two["answer"] == "Sure, [SEG] and [SEG]." and two["reason"] == "" and two["frames_with_mask"] > 0
    assert last["answer"] == "Sure, [SEG]" and last["reason"] == "" and last["frames_with_mask"] > 0
    assert none["answer"] == "I cannot find it." and none["frames_with_mask"] == 0
    assert "without a [SEG]" in none["reason"]
    assert endless["answer"] == " ".join(["the"] * 10) and endless["frames_with_mask"] == 0
    assert "max_new_tokens (10)" in endless["reason"]
    for q in report.values():  # a mask file per frame in every case, empty or not
        assert len(list((tmp_path / "out" / Path(q["masks"]).name).glob("*.png"))) == 4
    with pytest.raises(SystemExit):
        video.parse_args(["--model", "m", "--input", "i", "--query", "q", "--out", "o", "--max-new-tokens", "0"])
