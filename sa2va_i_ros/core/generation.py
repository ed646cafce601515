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
as the very last token has no hidden state, exactly as in Sa2VA.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .errors import Cancelled

__all__ = ["Cancelled", "Generation", "StopWords", "greedy_generate"]


@dataclass
class Generation:
    token_ids: list[int]
    seg_hidden: torch.Tensor  # (n_seg, hidden), last layer, at each [SEG]'s own position
    stopped_by: str  # "eos", "stop_word" or "max_new_tokens"


class StopWords:
    """Sa2VA's StopWordStoppingCriteria for several words."""

    def __init__(self, tokenizer, words: tuple[str, ...]):
        self.tokenizer, self.words = tokenizer, words

    def __call__(self, generated: list[int]) -> bool:
        text = self.tokenizer.decode(generated).replace("\r", "").replace("\n", "")
        return any(text[-len(w):] == w for w in self.words)


@torch.no_grad()
def greedy_generate(language_model, prompt_embeds: torch.Tensor, *, seg_id: int, eos_id: int,
                    stop: Callable[[list[int]], bool], max_new_tokens: int,
                    cancelled: Callable[[], bool] | None = None) -> Generation:
    """Generate greedily from ``prompt_embeds`` (1, L, H)."""
    from transformers import DynamicCache

    backbone, head = language_model.model, language_model.lm_head
    cache = DynamicCache()
    out = backbone(inputs_embeds=prompt_embeds, past_key_values=cache, use_cache=True)
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
    seg = torch.stack(seg_states) if seg_states else prompt_embeds.new_zeros((0, prompt_embeds.shape[-1]))
    return Generation(tokens, seg, stopped_by)
