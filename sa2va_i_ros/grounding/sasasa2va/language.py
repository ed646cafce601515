"""SaSaSa2VA's language part in bounded steps: 20 clip images -> vision tower -> greedy answer -> [SEG] states.

``language_steps`` is a generator (one clip's images, ``vision_frames_per_step``
images through the vision tower, one prefill chunk or one generated token per
step), so the node's perception worker can track live frames between the
steps; the whole-video pipeline drains it. Same model calls either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sa2va_i_ros.errors import QueryError
from sa2va_i_ros.grounding.engine import GroundingEngine, GroundingOptions
from sa2va_i_ros.grounding.sasasa2va.images import clip_images
from sa2va_i_ros.grounding.sasasa2va.modes import CLIP_LENGTH, NUM_CLIPS
from sa2va_i_ros.model import prompt as prompts
from sa2va_i_ros.model.preprocess import mllm_pixels
from sa2va_i_ros.model.vision_features import image_embeddings

NUM_IMAGES = 2 * NUM_CLIPS  # key frame + grid per clip


@dataclass
class Answer:
    answer: str  # without the stop word (or eos token)
    raw_answer: str  # decoded generated tokens
    seg: torch.Tensor  # (n_seg, C) [SEG] states through text_hidden_fcs, float32 on the model's device
    token_ids: list[int]  # generated ids, stop token included


def check_query(query: str) -> None:
    """SaSaSa2VA's evaluation sends an expression holding "?" without its "<image>" (refVOS.py) and the
    model then asserts; refuse it with the reason instead."""
    if "?" in query:
        raise QueryError("SaSaSa2VA's evaluation passes an expression containing '?' to the model as raw "
                         "text without the video (its refVOS.py), which then fails (no image tokens); rephrase "
                         "the query without '?'")


def no_seg_reason(answer: str) -> str:
    """Why an answer gives no mask: SaSaSa2VA needs a [SEG] (the official code fails with an IndexError)."""
    return f"the model answered without a {prompts.SEG_TOKEN} token: {answer!r}; SaSaSa2VA needs one per clip"


def prompt_ids(engine: GroundingEngine, query: str) -> list[int]:
    """Token ids of "<image>\\nPlease segment {query}." with 20 image blocks, in the checkpoint's template."""
    ids = engine.tokenizer.encode(prompts.build_prompt(query, NUM_IMAGES, engine.cfg.template))
    if len(ids) + 1 > engine.max_positions:
        raise QueryError(f"the prompt is {len(ids)} tokens, more than the language model's "
                         f"{engine.max_positions} positions; shorten the query")
    return ids


def strip_answer(engine: GroundingEngine, raw: str) -> str:
    """The answer without its stop word; the 4B's phi3_chat stops on "<|end|>" text or on the eos token."""
    eos = engine.tokenizer.eos_token
    for word in (*engine.cfg.template.stop_words, *([eos] if eos else [])):
        if raw.endswith(word):
            return raw[: -len(word)].strip()
    return raw


def language_steps(engine: GroundingEngine, frames: Sequence[np.ndarray], query: str, sampled: list[int],
                   options: GroundingOptions, cancelled: Callable[[], bool] | None = None,
                   timings: dict[str, float] | None = None) -> Generator[str, None, Answer]:
    """The answer and its [SEG] states for the 20 clip images of ``sampled`` (S, 100 indices).

    ``timings`` (ms) collects "preprocess" (clip images) and "language"
    (vision tower and generation).
    """
    timings = {} if timings is None else timings

    def add(stage: str, t0: float) -> None:
        timings[stage] = timings.get(stage, 0.0) + (time.perf_counter() - t0) * 1e3

    ids = prompt_ids(engine, query)
    pixels = []
    for start in range(0, len(sampled), CLIP_LENGTH):
        t0 = time.perf_counter()
        pixels += [mllm_pixels(img) for img in clip_images(frames, sampled[start:start + CLIP_LENGTH])]
        add("preprocess", t0)
        yield "preprocess"
    pixels = torch.stack(pixels)
    per_step = options.vision_frames_per_step if options.vision_frames_per_step > 0 else len(pixels)
    vit = []
    for start in range(0, len(pixels), per_step):
        t0 = time.perf_counter()
        vit.append(image_embeddings(engine.model, pixels[start:start + per_step].to(engine.device, engine.dtype)))
        add("language", t0)
        yield "vision"
    steps = engine._language(torch.cat(vit), ids, options, cancelled)
    while True:
        t0 = time.perf_counter()
        try:
            stage = next(steps)
        except StopIteration as done:
            gen, seg = done.value
            add("language", t0)
            break
        add("language", t0)
        yield stage
    raw = engine.tokenizer.decode(gen.token_ids, skip_special_tokens=False).strip()
    return Answer(strip_answer(engine, raw), raw, seg.float(), list(gen.token_ids))

