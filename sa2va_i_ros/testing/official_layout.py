"""Writing checkpoints in the official layout: our tensors under Sa2VA's names, in shards.

The inverse of the loader's key map, for test and benchmark checkpoints: the
InternVL/Qwen2 names come from ``tiny._official_state``; an InternLM2 language
model gets InternLM2's names and its grouped ``wqkv`` back
(``internlm2.official_names``). ``write_random_checkpoint`` writes a model of
any size with random weights without ever building it in memory: one shard of
random tensors at a time (real-size benchmark models).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from sa2va_i_ros.model.checkpoint import internlm2

SHARD_BYTES = 2 << 30


def official_state(model, sa2va_i: bool = True) -> dict[str, torch.Tensor]:
    """Every tensor of ``model`` (a ``Sa2VAModel``, possibly empty) under the official names."""
    from sa2va_i_ros.testing.tiny_sa2va import _official_state

    state = _official_state(model, sa2va_i)
    if model.cfg.llm_arch == "InternLM2ForCausalLM":
        lm_cfg = model.language_model.config
        lm = {k: state.pop(k) for k in [k for k in state if k.startswith(internlm2.PREFIX)]}
        state.update(internlm2.official_names(lm, lm_cfg.num_attention_heads, lm_cfg.num_key_value_heads))
    return state


def write_shards(out: Path, names: dict[str, tuple[tuple[int, ...], torch.dtype]],
                 make: Callable[[str, tuple[int, ...], torch.dtype], torch.Tensor],
                 shard_bytes: int = SHARD_BYTES) -> int:
    """Write ``names`` (name -> shape, dtype) as HF-style shards + index, each tensor from ``make``.

    Only one shard's tensors are in memory at a time. Returns the bytes written.
    """
    from safetensors.torch import save_file

    groups: list[list[str]] = [[]]
    size = 0
    for name, (shape, dtype) in names.items():
        nbytes = dtype.itemsize * (int(torch.Size(shape).numel()))
        if groups[-1] and size + nbytes > shard_bytes:
            groups.append([])
            size = 0
        groups[-1].append(name)
        size += nbytes
    weight_map, total = {}, 0
    for i, group in enumerate(groups):
        fname = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        shard = {n: make(n, *names[n]).contiguous() for n in group}
        total += sum(t.numel() * t.element_size() for t in shard.values())
        save_file(shard, str(out / fname), metadata={"format": "pt"})
        weight_map.update({n: fname for n in group})
        del shard
    (out / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, indent=2))
    return total


def write_random_checkpoint(out: Path, config: dict, dtype: torch.dtype = torch.bfloat16, seed: int = 0,
                            shard_bytes: int = SHARD_BYTES) -> int:
    """Random weights of the network ``config`` (a config.json dict) in the official layout.

    ``config.json`` is written as given; the network is built empty (no memory)
    only to know every official name and shape. Returns the bytes of weights.
    """
    from sa2va_i_ros.model.checkpoint.config import read_config
    from sa2va_i_ros.model.sa2va_model import Sa2VAModel

    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    shapes = {k: (tuple(v.shape), dtype) for k, v in official_state(Sa2VAModel(read_config(out), empty=True)).items()}
    generator = torch.Generator().manual_seed(seed)

    def make(name, shape, dt):
        return (torch.randn(shape, generator=generator) * 0.02).to(dt)

    return write_shards(out, shapes, make, shard_bytes)
