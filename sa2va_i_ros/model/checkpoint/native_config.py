"""transformers configs built from config.json through a whitelist.

Only the fields that shape the network reach transformers: a checkpoint's
``attn_implementation: flash_attention_2``, ``torch_dtype``, ``auto_map`` or any
field a future transformers might act on never does. Attention is always
PyTorch's ``sdpa`` kernel, which exists in every torch build.

* the vision tower: InternViT's fields in transformers' ``InternVLVisionConfig``
  names (defaults: InternViT's own ``InternVisionConfig``, i.e. InternViT-6B);
* a Qwen2 language model: ``Qwen2Config``;
* an InternLM2 language model (Sa2VA-8B/26B): transformers' ``LlamaConfig``,
  with InternLM2Config's own defaults (``bias`` True, ``rope_theta`` 10000,
  KV heads = heads, 2048 positions) and ``tie_word_embeddings`` False.
"""

from __future__ import annotations

from transformers import InternVLVisionConfig, LlamaConfig, Qwen2Config

ATTENTION = "sdpa"
QWEN2_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "hidden_act", "max_position_embeddings", "rms_norm_eps",
                "tie_word_embeddings", "use_sliding_window", "sliding_window", "max_window_layers", "layer_types",
                "bos_token_id", "eos_token_id")
# InternLM2Config.__init__ defaults (Sa2VA's configuration_internlm2.py)
INTERNLM2_DEFAULTS = dict(vocab_size=103168, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                          num_attention_heads=32, num_key_value_heads=None, hidden_act="silu",
                          max_position_embeddings=2048, rms_norm_eps=1e-6, bias=True, rope_theta=10000,
                          rope_scaling=None, bos_token_id=1, eos_token_id=2)


def rope_parameters(llm: dict, default_theta: float) -> dict:
    """transformers 5 ``rope_parameters`` from the legacy ``rope_theta`` / ``rope_scaling`` fields."""
    theta = float(llm.get("rope_theta") or default_theta)
    scaling = llm.get("rope_scaling") or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind not in ("default", "linear", "dynamic"):
        raise ValueError(f"RoPE scaling {kind!r} is not supported (default, linear or dynamic)")
    params = {"rope_type": kind, "rope_theta": theta}
    if kind != "default":
        params["factor"] = float(scaling["factor"])
    return params


def vision_config(vision: dict, image_size: int, patch_size: int) -> InternVLVisionConfig:
    """InternViT's config.json fields in transformers' names (defaults: InternVisionConfig's)."""
    return InternVLVisionConfig(
        hidden_size=vision.get("hidden_size", 3200),
        num_hidden_layers=vision.get("num_hidden_layers", 48),
        num_attention_heads=vision.get("num_attention_heads", 25),
        intermediate_size=vision.get("intermediate_size", 12800),
        attention_bias=bool(vision.get("qkv_bias", False)),
        use_qk_norm=bool(vision.get("qk_normalization", True)),
        hidden_act=vision.get("hidden_act", "gelu"),
        norm_type=vision.get("norm_type", "rms_norm"),
        layer_norm_eps=vision.get("layer_norm_eps", 1e-6),
        image_size=image_size,
        patch_size=patch_size,
        use_mean_pooling=True,  # no final norm: InternViT's last_hidden_state is the last block's output
        attn_implementation=ATTENTION,
    )


def qwen2_config(llm: dict) -> Qwen2Config:
    fields = {k: llm[k] for k in QWEN2_FIELDS if k in llm}
    return Qwen2Config(**fields, rope_parameters=rope_parameters(llm, 10000.0), attn_implementation=ATTENTION)


def internlm2_config(llm: dict) -> LlamaConfig:
    """InternLM2 as Llama: same blocks once ``wqkv`` is split (see ``checkpoint.internlm2``)."""
    v = {**INTERNLM2_DEFAULTS, **{k: llm[k] for k in INTERNLM2_DEFAULTS if llm.get(k) is not None}}
    heads = int(v["num_attention_heads"])
    return LlamaConfig(
        vocab_size=v["vocab_size"], hidden_size=v["hidden_size"], intermediate_size=v["intermediate_size"],
        num_hidden_layers=v["num_hidden_layers"], num_attention_heads=heads,
        num_key_value_heads=int(v["num_key_value_heads"] or heads), hidden_act=v["hidden_act"],
        max_position_embeddings=v["max_position_embeddings"], rms_norm_eps=v["rms_norm_eps"],
        attention_bias=bool(v["bias"]), mlp_bias=False, tie_word_embeddings=False,
        head_dim=int(v["hidden_size"]) // heads, rope_parameters=rope_parameters(v, 10000.0),
        bos_token_id=v["bos_token_id"], eos_token_id=v["eos_token_id"], attn_implementation=ATTENTION)


LANGUAGE_CONFIGS = {"Qwen2ForCausalLM": qwen2_config, "InternLM2ForCausalLM": internlm2_config}


def language_config(arch: str, llm: dict):
    return LANGUAGE_CONFIGS[arch](llm)
