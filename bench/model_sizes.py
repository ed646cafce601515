"""Parameter counts and weight memory of every supported checkpoint, computed from configs (not measured).

Each model is built empty (meta parameters: no memory) from a config.json with
the published dimensions of its parts (vision tower, language model; SAM 2.0
Hiera-L and both mask decoders for all), and its parameters are counted. The
language model is counted with an untied ``lm_head`` (Sa2VA's converter
unties it). Weights only: activations, the KV cache, SAM2 features and frames
come on top.

    python -m bench.model_sizes      # the README's model table
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

VIT_300M = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)
VIT_6B = dict(hidden_size=3200, num_hidden_layers=45, num_attention_heads=25, intermediate_size=12800)
QWEN25 = {  # hidden, layers, heads, kv heads, intermediate, vocabulary rows
    "0.5B": (896, 24, 14, 2, 4864, 151936), "1.5B": (1536, 28, 12, 2, 8960, 151936),
    "3B": (2048, 36, 16, 2, 11008, 151936), "7B": (3584, 28, 28, 4, 18944, 152064),
    "14B": (5120, 48, 40, 8, 13824, 152064)}
INTERNLM25 = {"7B": (4096, 32, 32, 8, 14336, 92553), "20B": (6144, 48, 48, 8, 16384, 92553)}

# name, vision, (family, size), hub ids
MODELS = [
    ("Sa2VA-i-1B / Sa2VA-1B", VIT_300M, ("qwen2", "0.5B"), "kumuji/Sa2VA-i-1B"),
    ("Sa2VA-InternVL3-2B", VIT_300M, ("qwen2", "1.5B"), "ByteDance/Sa2VA-InternVL3-2B"),
    ("Sa2VA-i-4B / Sa2VA-4B", VIT_300M, ("qwen2", "3B"), "kumuji/Sa2VA-i-4B"),
    ("Sa2VA-i-8B / Sa2VA-8B", VIT_300M, ("internlm2", "7B"), "kumuji/Sa2VA-i-8B"),
    ("Sa2VA-InternVL3-8B", VIT_300M, ("qwen2", "7B"), "ByteDance/Sa2VA-InternVL3-8B"),
    ("Sa2VA-InternVL3-14B", VIT_300M, ("qwen2", "14B"), "ByteDance/Sa2VA-InternVL3-14B"),
    ("Sa2VA-i-26B / Sa2VA-26B", VIT_6B, ("internlm2", "20B"), "kumuji/Sa2VA-i-26B"),
]


def config_for(vision: dict, family: str, size: str) -> dict:
    from sa2va_i_ros.model.sam2_model import Sam2Spec
    from sa2va_i_ros.testing.tiny_internlm2 import official_config_internlm2
    from sa2va_i_ros.testing.tiny_sa2va import build_tokenizer, official_config

    if family == "qwen2":
        h, n, heads, kv, inter, vocab = QWEN25[size]
        cfg = official_config(build_tokenizer(), Sam2Spec(), vision_dims=vision, vocab_size=vocab, llm_dims=dict(
            hidden_size=h, num_hidden_layers=n, num_attention_heads=heads, num_key_value_heads=kv,
            intermediate_size=inter))
    else:
        h, n, heads, kv, inter, vocab = INTERNLM25[size]
        cfg = official_config_internlm2(
            vision_dims=vision, vocab_size=vocab, vision="6b" if vision is VIT_6B else "300m",
            llm_dims=dict(hidden_size=h, num_hidden_layers=n, num_attention_heads=heads, num_key_value_heads=kv,
                          intermediate_size=inter))
    cfg.pop("sa2va_i_ros_sam2")
    return cfg


def count(cfg: dict) -> tuple[int, int]:
    """(all parameters, language-model parameters) of the empty-built network."""
    from sa2va_i_ros.model.checkpoint.config import read_config
    from sa2va_i_ros.model.sa2va_model import Sa2VAModel

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(cfg))
        net = Sa2VAModel(read_config(Path(tmp)), empty=True)
    total = sum(p.numel() for p in net.parameters())
    lm = sum(p.numel() for part in (net.language_model, net.text_hidden_fcs) for p in part.parameters())
    return total, lm


def table() -> list[str]:
    rows = ["| model | parts | parameters (computed) | weights bf16 | weights fp16 GPU (LM fp32) | run it |",
            "| --- | --- | --- | --- | --- | --- |"]
    for name, vision, (family, size), hub in MODELS:
        total, lm = count(config_for(vision, family, size))
        vit = "InternViT-6B" if vision is VIT_6B else "InternViT-300M"
        llm = f"{'Qwen2.5' if family == 'qwen2' else 'InternLM2.5'}-{size}"
        bf16, fp16 = 2 * total / 1e9, (2 * (total - lm) + 4 * lm) / 1e9
        rows.append(f"| {name} | {vit}, {llm}, SAM2 Hiera-L | {total / 1e9:.2f} B | {bf16:.1f} GB | {fp16:.1f} GB | "
                    f"`model:={hub}` |")
    return rows


if __name__ == "__main__":
    print("\n".join(table()))
