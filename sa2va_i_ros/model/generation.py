"""Greedy generation with a KV cache that keeps only the [SEG] hidden states.

Sa2VA calls ``generate(inputs_embeds=..., output_hidden_states=True)`` and later
picks, from the LAST layer, the hidden state at each position whose input token
is ``[SEG]`` (the token's own position, not shifted: the state computed when the
generated ``[SEG]`` is fed back). That keeps every layer's hidden states of
every step in memory and the prompt's full logits. This loop computes the same
tokens and the same vectors while keeping only what is used: the cache, the
last-position logits, and the last-layer state at ``[SEG]`` positions.

Stopping is Sa2VA's: the eos id, the template's stop words matched on the
decoded text of the generated tokens with ``\\r``/``\\n`` removed, or
``max_new_tokens``. The final token is never fed back, so a ``[SEG]`` emitted
as the very last token has no hidden state, exactly as in Sa2VA. The stop-word
check decodes only a bounded suffix of the answer (``StopWords``), so its cost
per token does not grow with the answer's length.

``greedy_steps`` is the same loop as a generator that yields after each
prefill chunk and each generated token: the perception worker interleaves live
tracking between those steps. ``greedy_generate`` drains it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass

import torch

from sa2va_i_ros.errors import Cancelled

__all__ = ["Cancelled", "Generation", "StopWords", "greedy_generate", "greedy_steps"]


@dataclass
class Generation:
    token_ids: list[int]
    seg_hidden: torch.Tensor  # (n_seg, hidden), last layer, at each [SEG]'s own position
    stopped_by: str  # "eos", "stop_word" or "max_new_tokens"


class StopWords:
    """Sa2VA's StopWordStoppingCriteria for several words, on a bounded suffix of the tokens.

    Sa2VA decodes every generated token at every step and tests whether the
    text, ``\\r`` and ``\\n`` removed, ends with a stop word: quadratic in the
    answer's length. Decoding only the last tokens gives the same end of text:
    a suffix can differ from the full decoding only in its first few
    characters (a UTF-8 character cut by the suffix's start decodes to at most
    three replacement characters; a leading space may be dropped or cleaned up).
    So the suffix grows (8, 16, ... tokens) until it decodes to at least
    ``HEAD_SLACK`` characters more than the longest stop word, or holds every
    token; ``decoded_tokens`` counts the tokens decoded (tests bound it).
    """

    FIRST_WINDOW = 8
    HEAD_SLACK = 8

    def __init__(self, tokenizer, words: tuple[str, ...]):
        self.tokenizer, self.words = tokenizer, words
        self.need = max((len(w) for w in words), default=0) + self.HEAD_SLACK
        self.decoded_tokens = 0

    def __call__(self, generated: list[int]) -> bool:
        n = len(generated)
        k = min(n, self.FIRST_WINDOW)
        while True:
            text = self.tokenizer.decode(generated[n - k:]).replace("\r", "").replace("\n", "")
            self.decoded_tokens += k
            if k == n or len(text) >= self.need:
                return any(text[-len(w):] == w for w in self.words)
            k = min(n, 2 * k)


def greedy_generate(language_model, prompt_embeds: torch.Tensor, *, seg_id: int, eos_id: int,
                    stop: Callable[[list[int]], bool], max_new_tokens: int,
                    cancelled: Callable[[], bool] | None = None, prefill_chunk: int = 0) -> Generation:
    """Generate greedily from ``prompt_embeds`` (1, L, H)."""
    return drain(greedy_steps(language_model, prompt_embeds, seg_id=seg_id, eos_id=eos_id, stop=stop,
                              max_new_tokens=max_new_tokens, cancelled=cancelled, prefill_chunk=prefill_chunk))


def drain(steps: Generator):
    """Run a step generator to its end (the one-call form of a stepped computation); its return value."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


@torch.no_grad()
def greedy_steps(language_model, prompt_embeds: torch.Tensor, *, seg_id: int, eos_id: int,
                 stop: Callable[[list[int]], bool], max_new_tokens: int,
                 cancelled: Callable[[], bool] | None = None,
                 prefill_chunk: int = 0) -> Generator[str, None, Generation]:
    """``greedy_generate`` one model call at a time: yields "prefill" or "token" after each, returns the Generation.

    ``prefill_chunk`` > 0 feeds the prompt through the KV cache in chunks of that
    many positions (each chunk attends to the cache and causally to itself: the
    same computation, in smaller steps); 0 feeds it at once.
    """
    from transformers import DynamicCache

    backbone, head = language_model.model, language_model.lm_head
    cache = DynamicCache()
    length = prompt_embeds.shape[1]
    chunk = prefill_chunk if 0 < prefill_chunk < length else length
    for start in range(0, length, chunk):
        out = backbone(inputs_embeds=prompt_embeds[:, start:start + chunk], past_key_values=cache, use_cache=True)
        yield "prefill"
    tokens: list[int] = []
    seg_states: list[torch.Tensor] = []
    hidden = out.last_hidden_state[:, -1]
    while True:
        token = int(head(hidden).float().argmax(dim=-1).item())
        tokens.append(token)
        if token == eos_id:
            stopped_by = "eos"
            break
        if stop(tokens):
            stopped_by = "stop_word"
            break
        if len(tokens) >= max_new_tokens:
            stopped_by = "max_new_tokens"
            break
        if cancelled is not None and cancelled():
            raise Cancelled("cancelled during generation")
        ids = torch.tensor([[token]], device=prompt_embeds.device)
        out = backbone(input_ids=ids, past_key_values=cache, use_cache=True)
        hidden = out.last_hidden_state[:, -1]
        if token == seg_id:
            seg_states.append(hidden[0])
        yield "token"
    seg = torch.stack(seg_states) if seg_states else prompt_embeds.new_zeros((0, prompt_embeds.shape[-1]))
    return Generation(tokens, seg, stopped_by)
