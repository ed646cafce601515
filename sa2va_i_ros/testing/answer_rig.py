"""The answer rig: a tiny checkpoint whose answer depends on a word of the query.

Tests need answers beyond "Sure, [SEG].": two [SEG], a [SEG] right before the
stop word, no [SEG] at all, and a model that never stops. This writes a tiny
checkpoint in the official layout (``write_tiny_checkpoint``, loaded by the
normal loader) whose language model says, through ordinary greedy decoding:

=================  =====================================  ===========================
query word         answer                                 case
=================  =====================================  ===========================
(none of these)    ``Sure, [SEG].``                       one [SEG] (the default)
``and``            ``Sure, [SEG] and [SEG].``             two [SEG]
``closest``        ``Sure, [SEG]`` then the stop word     [SEG] last before the stop
``dog``            ``I cannot find it.``                  no [SEG]
``moving``         `` the the the ...`` without end       runs to max_new_tokens
``car``            ``[SEG][SEG][SEG]...`` without end     max_new_tokens on a [SEG]
=================  =====================================  ===========================

A word counts when it follows a space ("the cup and the bowl"); when several
are present the one listed first wins.

How. The residual stream has ``reserved`` dimensions that only the first
layer's designed attention heads write and that lm_head alone reads (every
other head, MLP and the image projector write zeros there; lm_head's other
columns are zero). The first layer sees token embeddings only, so what those
heads write is an exact function of the token sequence:

* the embedding of each answer token sets its own "current token" dimension;
* a counting head attends, with equal scores, to every ``[SEG]`` and to the
  prompt's two ``<|im_start|>``: it writes ``n / (n + 2)`` for n [SEG] so far,
  which tells the first [SEG] of "and [SEG]" from the second;
* one selector head per token whose successor depends on the answer (the
  prompt's final newline, ``[SEG]``) attends, only when that token is the
  current one, to the trigger words of the query and writes which answer they
  select (positions use the slowest rotary pair, nearly constant over any
  prompt length).

lm_head is then fitted to those features (a multi-class perceptron with a
margin over the answers' token contexts, deterministic), so the argmax follows
the answer exactly; the final RMSNorm only scales all logits alike. The other
residual dimensions hold random attention over images and query, so the
[SEG] hidden states still differ with the frames.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from sa2va_i_ros.model.checkpoint.config import SAM2_ENTRY
from sa2va_i_ros.model.prompt import SEG_TOKEN
from sa2va_i_ros.model.sam2_model import Sam2Spec
from sa2va_i_ros.testing.tiny_sa2va import TINY_SAM2, TINY_VISION, randomize_language_model, write_tiny_checkpoint


@dataclass(frozen=True)
class RigAnswer:
    name: str
    trigger: str | None  # a word of the query selecting this answer; None for the default
    text: str  # what the model says before the stop word
    loop: bool = False  # repeat ``text`` for ever (never says the stop word)


ANSWERS = (
    RigAnswer("one_seg", None, "Sure, [SEG]."),
    RigAnswer("two_seg", "and", "Sure, [SEG] and [SEG]."),
    RigAnswer("seg_last", "closest", "Sure, [SEG]"),
    RigAnswer("no_seg", "dog", "I cannot find it."),
    RigAnswer("endless", "moving", " the", loop=True),
    RigAnswer("endless_seg", "car", SEG_TOKEN, loop=True),
)
BY_NAME = {a.name: a for a in ANSWERS}
# A query for each case, for tests and demos.
QUERIES = {"one_seg": "the red cup", "two_seg": "the cup and the bowl", "seg_last": "the closest cup",
           "no_seg": "the dog", "endless": "the moving robot", "endless_seg": "the car"}
RIG_LLM = dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=8,
               intermediate_size=256)

_START, _STOP, _ANCHOR = "Ċ", "<|im_end|>", "<|im_start|>"  # the prompt's last token; eos; 2 per prompt
_SLOW = 7  # the slowest rotary pair of a 16-wide head: (7, 15), 5.6e-6 rad per position at theta 1e6
_SCORE = 32.0  # attention score of a matching key (others score 0)
_PRIORITY = 8.0  # score added per rank, so that the first-listed trigger wins


def _chains(tok) -> dict[str, list[int]]:
    """Token ids per answer: the prompt's final newline, the answer, then eos (unless it loops)."""
    start, stop = tok.convert_tokens_to_ids(_START), tok.convert_tokens_to_ids(_STOP)
    return {a.name: [start, *tok.encode(a.text), *([] if a.loop else [stop])] for a in ANSWERS}


def _contexts(tok, loop_steps: int = 48):
    """(answer, current token, [SEG] count so far, next token) for every step of every answer."""
    seg = tok.convert_tokens_to_ids(SEG_TOKEN)
    out = []
    for a in ANSWERS:
        chain = _chains(tok)[a.name]
        body = chain[1:]
        seq = chain + body * (loop_steps // len(body)) if a.loop else chain
        for k in range(len(seq) - 1):
            out.append((a.name, seq[k], seq[: k + 1].count(seg), seq[k + 1]))
    return out


def _trigger_ids(tok) -> dict[str, list[int]]:
    """Single-token forms of each trigger word (after a space, and bare where it is one token)."""
    out = {}
    for a in ANSWERS:
        if a.trigger is None:
            continue
        ids = [i for form in ("Ġ" + a.trigger, a.trigger)
               if (i := tok.convert_tokens_to_ids(form)) is not None and i != tok.unk_token_id
               and tok.convert_ids_to_tokens(i) == form]
        if not ids:
            raise ValueError(f"trigger {a.trigger!r} is not a single token of the tiny tokenizer")
        out[a.name] = ids
    return out


@dataclass
class _Layout:
    """Which reserved residual dimension holds what."""

    current: dict[int, int]  # token id -> its "current token" dimension
    trigger: dict[str, int]  # answer -> dimension its trigger words set
    ckey: int  # set by [SEG] and <|im_start|>: what the counting head attends to
    pad: int  # evens out the norm of every designed embedding
    selected: dict[tuple[int, str], int]  # (decision token, answer) -> selector output
    count: int  # n / (n + 2)
    size: int

    def features(self, answer: str, cur: int, n_seg: int, decisions: list[int], triggered: set[str]):
        """The reserved part of the last position's residual, as the first layer writes it."""
        x = torch.zeros(self.size)
        x[self.current[cur]] = 1.0
        if cur in decisions and answer in triggered:
            x[self.selected[(cur, answer)]] = 1.0
        x[self.count] = n_seg / (n_seg + 2)
        return x


def _layout(tok, contexts) -> tuple[_Layout, list[int]]:
    next_of: dict[int, set[int]] = {}
    exact: dict[tuple[str, int, int], int] = {}
    for answer, cur, n, nxt in contexts:
        next_of.setdefault(cur, set()).add(nxt)
        if exact.setdefault((answer, cur, n), nxt) != nxt:
            raise ValueError(f"answer {answer!r}: token {cur} with {n} [SEG] before has two successors")
    decisions = sorted(t for t, s in next_of.items() if len(s) > 1)
    dim = iter(range(10_000))
    current = {t: next(dim) for t in sorted(next_of)}
    triggered = [a.name for a in ANSWERS if a.trigger is not None]
    trigger = {a: next(dim) for a in triggered}
    ckey, pad = next(dim), next(dim)
    selected = {(t, a): next(dim) for t in decisions for a in triggered}
    count = next(dim)
    return _Layout(current, trigger, ckey, pad, selected, count, next(dim)), decisions


def _fit_head(xs: torch.Tensor, ys: list[int], classes: list[int], margin: float = 2.0) -> torch.Tensor:
    """lm_head rows for ``classes``: a perceptron until every target beats every other class and 0 by ``margin``."""
    w = torch.zeros(len(classes), xs.shape[1], dtype=torch.float64)
    col = {c: k for k, c in enumerate(classes)}
    xs = xs.double()
    for _ in range(2000):
        errors = 0
        for x, y in zip(xs, ys, strict=True):
            logits = w @ x
            target = logits[col[y]]
            rival = logits.clone()
            rival[col[y]] = -float("inf")
            worst = int(rival.argmax())
            if target - max(float(rival[worst]), 0.0) < margin:
                errors += 1
                w[col[y]] += x
                if rival[worst] > 0.0 or target - rival[worst] < margin:
                    w[worst] -= x
        if errors == 0:
            return w.float()
    raise RuntimeError("the answer rig's lm_head does not separate its answers")


@torch.no_grad()
def design(model, tok, generator: torch.Generator) -> None:
    """Set the language model (and zero the projector's reserved outputs) as described above."""
    lm = model.language_model
    randomize_language_model(lm, generator)
    cfg = lm.config
    hidden, heads = cfg.hidden_size, cfg.num_attention_heads
    head_dim = hidden // heads
    if cfg.num_key_value_heads != heads or head_dim != 16:
        raise ValueError("the answer rig needs one key/value head per head and 16-wide heads")
    contexts = _contexts(tok)
    lay, decisions = _layout(tok, contexts)
    if lay.size > hidden // 2 or 1 + len(decisions) > heads:
        raise ValueError("the answer rig needs a wider language model")
    r = lay.size
    seg, anchor = tok.convert_tokens_to_ids(SEG_TOKEN), tok.convert_tokens_to_ids(_ANCHOR)
    triggers = _trigger_ids(tok)

    # embeddings: designed tokens hold only reserved entries, all with one norm (so one score/value each)
    embed = lm.model.embed_tokens.weight
    embed[:, :r] = 0.0
    entries: dict[int, list[int]] = {}
    for t, d in lay.current.items():
        entries.setdefault(t, []).append(d)
    for name, ids in triggers.items():
        for t in ids:
            entries.setdefault(t, []).append(lay.trigger[name])
    for t in (seg, anchor):
        entries.setdefault(t, []).append(lay.ckey)
    width = max(len(d) for d in entries.values())
    for t, dims in entries.items():
        embed[t] = 0.0
        embed[t, dims] = 1.0
        embed[t, lay.pad] = (width - len(dims)) ** 0.5
    unit = (hidden / width) ** 0.5  # what RMSNorm makes of each 1.0 entry

    # the image projector writes nothing into the reserved dimensions
    proj = model.multi_modal_projector.linear_2
    proj.weight[:r] = 0.0
    proj.bias[:r] = 0.0

    # every module but the designed heads leaves the reserved dimensions alone
    for layer in lm.model.layers:
        layer.self_attn.o_proj.weight[:r] = 0.0
        layer.mlp.down_proj.weight[:r] = 0.0
    attn = lm.model.layers[0].self_attn
    designed = range(1 + len(decisions))
    for h in designed:
        rows = slice(h * head_dim, (h + 1) * head_dim)
        for p in (attn.q_proj, attn.k_proj, attn.v_proj):
            p.weight[rows] = 0.0
            p.bias[rows] = 0.0
        attn.o_proj.weight[:, rows] = 0.0

    def row(h: int, k: int) -> int:
        return h * head_dim + k

    # head 0 counts: constant query, keys on [SEG] and <|im_start|>, value 1 on [SEG]
    attn.q_proj.bias[row(0, _SLOW)] = 8.0
    attn.k_proj.weight[row(0, _SLOW), lay.ckey] = _SCORE * head_dim**0.5 / (8.0 * unit)
    attn.v_proj.weight[row(0, 0), lay.current[seg]] = 1.0
    attn.o_proj.weight[lay.count, row(0, 0)] = 1.0 / unit
    # heads 1..: one per decision token, looking at trigger words only when that token is current
    triggered = [a.name for a in ANSWERS if a.trigger is not None]
    for h, t in enumerate(decisions, start=1):
        attn.q_proj.weight[row(h, _SLOW), lay.current[t]] = 8.0 / unit
        for k, name in enumerate(triggered):
            score = _SCORE + _PRIORITY * (len(triggered) - k)
            attn.k_proj.weight[row(h, _SLOW), lay.trigger[name]] = score * head_dim**0.5 / (8.0 * unit)
            attn.v_proj.weight[row(h, k), lay.trigger[name]] = 1.0
            attn.o_proj.weight[lay.selected[(t, name)], row(h, k)] = 1.0 / unit

    # lm_head reads the reserved dimensions only, fitted to the features above
    classes = sorted({nxt for *_, nxt in contexts})
    xs = torch.stack([lay.features(a, cur, n, decisions, set(triggered)) for a, cur, n, _ in contexts])
    head = lm.lm_head.weight
    head.zero_()
    head[classes, :r] = _fit_head(xs, [nxt for *_, nxt in contexts], classes).to(head.dtype)


def write_answer_rig(out_dir: str | Path, *, seed: int = 0, spec: Sam2Spec = TINY_SAM2) -> Path:
    """Write the answer rig checkpoint (official layout, tiny SAM2 unless ``spec``); returns its directory.

    With the real SAM 2.0 Hiera-L (``Sam2Spec()``) config.json carries no SAM2
    entry, exactly like an official checkpoint: the official code can run it.
    """
    out = write_tiny_checkpoint(out_dir, seed=seed, spec=spec, vision_dims=TINY_VISION, llm_dims=RIG_LLM,
                                design=design)
    if spec == Sam2Spec():
        cfg = json.loads((out / "config.json").read_text())
        cfg.pop(SAM2_ENTRY)
        (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    return out
