"""Generation in bounded steps: the stop-word check on a suffix, chunked prefill, per-frame vision steps.

The stop-word check is compared with Sa2VA's own definition (decode every
generated token, drop ``\\r``/``\\n``, test the end) written out here, on
thousands of token sequences, for a byte-level BPE tokenizer (the tiny
checkpoint's Qwen2 one) and a SentencePiece-style one; its cost is counted in
tokens decoded, not timed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_tracker_helpers import one_torch_thread  # noqa: F401  (autouse: one torch thread on a shared machine)

from sa2va_i_ros.grounding.engine import GroundingOptions
from sa2va_i_ros.model.generation import StopWords
from sa2va_i_ros.testing.tiny_sa2va import DEFAULT_ANSWER  # what the tiny checkpoint was built to say

QUERY = "the cup left of the bowl"
WORDS = ("<|im_end|>", "<|endoftext|>", "ab\u00e9", "\u4e2d\u6587!", "x")
# alone, a short word makes the decoded suffix short: a cut character or a dropped leading space at the
# suffix's start would then reach the word
WORD_SETS = {"byte_level_bpe": [WORDS, ("\u00e9!",), ("\u4e2d\u6587!",), (" x",), ("\U0001f600",)],
             "metaspace": [WORDS, ("\u00e9!",), (" x",), ("y z",)]}  # what its small vocabulary can spell
PIECES = ["Sure", ",", " [SEG]", ".", "\n", "\r\n", "\u00e9", "\u4e2d\u6587", "\U0001f600", "<|im_end|>", " the cup",
          "ab", "\u00e9!", "<|endoftext|>", "  ", "x", "'s", " .", "\t", "\u4e2d", " x", "y z", "\u4e2d\u6587!"]


def sa2va_stop(tokenizer, words, generated) -> bool:
    """Sa2VA's StopWordStoppingCriteria: the whole answer decoded at every step."""
    text = tokenizer.decode(generated).replace("\r", "").replace("\n", "")
    return any(text[-len(w):] == w for w in words)


def random_sequences(tokenizer, rng, count: int, max_pieces: int = 30):
    vocab = len(tokenizer)
    for _ in range(count):
        ids: list[int] = []
        for _ in range(int(rng.integers(1, max_pieces))):
            if rng.random() < 0.3:
                ids.append(int(rng.integers(0, vocab)))  # any token, also byte pieces of characters
            else:
                ids += tokenizer.encode(PIECES[int(rng.integers(0, len(PIECES)))], add_special_tokens=False)
        yield ids


def metaspace_tokenizer():
    """A SentencePiece-style tokenizer (leading-space marker, stripped on decode), trained here."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    corpus = ["Sure, the cup left of the bowl.", "ab\u00e9 \u4e2d\u6587! x y z", "the red box 's handle ."] * 20
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=120, special_tokens=["<unk>", "<|im_end|>"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", additional_special_tokens=["<|im_end|>"])


def make_tokenizer(kind: str, engine):
    return engine.tokenizer if kind == "byte_level_bpe" else metaspace_tokenizer()


@pytest.fixture(params=["byte_level_bpe", "metaspace"])
def tokenizer(request, engine):
    return make_tokenizer(request.param, engine)


@pytest.mark.parametrize("kind, words", [(k, w) for k, sets in WORD_SETS.items() for w in sets])
def test_suffix_check_equals_the_full_decode_on_many_sequences(engine, kind, words):
    tokenizer = make_tokenizer(kind, engine)
    rng = np.random.default_rng(0)
    stop = StopWords(tokenizer, words)
    hits = 0
    for ids in random_sequences(tokenizer, rng, 400):
        for end in range(max(1, len(ids) - 3), len(ids) + 1):
            expected = sa2va_stop(tokenizer, words, ids[:end])
            assert stop(ids[:end]) == expected, (ids[:end], tokenizer.decode(ids[:end]))
            hits += expected
    assert hits > 20  # both outcomes are exercised


def test_suffix_check_cost_does_not_grow_with_the_answer(tokenizer):
    """Tokens decoded per check stay bounded for a 2000-token answer (Sa2VA's way: 2000 per check)."""
    rng = np.random.default_rng(1)
    ids = [t for seq in random_sequences(tokenizer, rng, 200) for t in seq][:2000]
    stop = StopWords(tokenizer, WORDS)
    per_check = []
    for n in range(1, len(ids) + 1):
        before = stop.decoded_tokens
        stop(ids[:n])
        per_check.append(stop.decoded_tokens - before)
    assert len(ids) == 2000
    # at most four doublings of the first 8-token window (runs of newlines decode to nothing), whatever n
    # is; Sa2VA's check decodes n tokens at step n
    assert max(per_check) <= 8 + 16 + 32 + 64 + 128
    early, late = np.mean(per_check[100:600]), np.mean(per_check[1500:2000])
    assert late < 1.5 * early  # no growth with the answer's length
    assert sum(per_check) < 50 * len(ids)  # linear in the answer, not quadratic (2 million)


def test_chunked_prefill_and_per_frame_vision_give_the_same_answer(engine, frames):
    whole = engine.ground(frames, QUERY)
    stepped = engine.ground(frames, QUERY, GroundingOptions(prefill_chunk=64, vision_frames_per_step=1))
    assert stepped.raw_answer == whole.raw_answer and stepped.sampled_indices == whole.sampled_indices
    torch.testing.assert_close(stepped.seg_embeddings, whole.seg_embeddings, rtol=1e-4, atol=1e-5)
    agree = (stepped.masks == whole.masks).mean()
    assert agree > 0.999


def test_ground_steps_are_bounded_model_calls(engine, frames):
    """One step per frame preprocessed, per vision-tower frame, per prefill chunk, per token, per encoder frame."""
    opts = GroundingOptions(num_frames=3, prefill_chunk=100, vision_frames_per_step=1)
    steps = engine.ground_steps(frames, QUERY, opts)
    stages = []
    while True:
        try:
            stages.append(next(steps))
        except StopIteration as done:
            result = done.value
            break
    from sa2va_i_ros.model import prompt as P

    prompt_len = len(engine.tokenizer.encode(P.build_prompt(QUERY, 3, engine.cfg.template)))
    answer_len = len(engine.tokenizer.encode(result.raw_answer))
    assert stages.count("preprocess") == 3 and stages.count("vision") == 3
    assert stages.count("prefill") == -(-prompt_len // 100)
    assert stages.count("token") == answer_len - 1  # the last token is never fed back
    assert stages.count("sam2_encoder") == 3 and stages.count("seg_decode") == 1
    assert result.has_mask and result.answer == DEFAULT_ANSWER
