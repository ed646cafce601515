"""Tiny random-weight Sa2VA-8B/26B-layout checkpoints: InternLM2 language model, InternViT-300M or -6B.

The same idea as ``tiny.py`` (whose answer chain and official names it reuses)
for the other family: config.json as ``Sa2VAChatConfig.to_dict()`` writes it
for Sa2VA-8B/26B (``llm_config`` of an ``InternLM2ForCausalLM``, template
``internlm2_chat``, optionally InternViT-6B's ``vision_config``: RMSNorm,
q/k normalisation, no qkv bias), the language model under InternLM2's tensor
names with its grouped ``wqkv``, and the InternLM2 tokenizer files: a
sentencepiece BPE ``tokenizer.model`` trained here offline (byte fallback,
identity normalisation; ``add_dummy_prefix`` / ``remove_extra_whitespaces``
as asked) whose placeholder control pieces are overlaid by the InternLM2 chat
tokens, followed by InternVL's and Sa2VA's added tokens, exactly as the real
tokenizer_config.json lists them (there at ids 92538-92557).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch

from sa2va_i_ros.model.prompt import get_template
from sa2va_i_ros.model.sam2_model import Sam2Spec
from sa2va_i_ros.testing.tiny_sa2va import (
    DEFAULT_ANSWER,
    INTERNVL_TOKENS,
    SA2VA_TOKENS,
    TINY_SAM2,
    TINY_VISION,
    _design_language_model,
)

# InternLM2's chat tokens, in id order (92538-92543 in the real tokenizer, over "[UNUSED_TOKEN_141..146]")
CHAT_TOKENS = ["<|plugin|>", "<|interpreter|>", "<|action_end|>", "<|action_start|>", "<|im_end|>", "<|im_start|>"]
PLACEHOLDERS = [f"[UNUSED_TOKEN_{n}]" for n in range(141, 147)]
TINY_INTERNLM2 = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=128)
TINY_VISION_6B = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=96)
_CORPUS = [
    "Sure, [SEG]. Please segment the cup left of the bowl.",
    "Please segment the red cup, the blue bowl, the green box and the yellow bottle on the table.",
    "user\nassistant\nsystem\n the person, the car, the dog, the cat, the robot arm, the object moving right.",
    "Which one is closest? Sure. It is the mug next to the plate. I cannot find it.",
    "def f(x):\n    return x  # code,   spaces\tand tabs",
    "Numbers 1234 and 56.78; quotes 'a' \"b\"; symbols (x) [y] {z} <w> a-b_c/d\\e",
    "Unicode: café naïve – “quotes” 東京 ﬁ ① Ｆｕｌｌ",
]


def train_sentencepiece(*, vocab_size: int = 420, add_dummy_prefix: bool = False,
                        remove_extra_whitespaces: bool = False, normalization: str = "identity") -> bytes:
    """A sentencepiece BPE model trained in memory on a small fixed corpus (deterministic)."""
    import sentencepiece

    out = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(_CORPUS * 30), model_writer=out, model_type="bpe", vocab_size=vocab_size,
        character_coverage=1.0, byte_fallback=True, normalization_rule_name=normalization,
        add_dummy_prefix=add_dummy_prefix, remove_extra_whitespaces=remove_extra_whitespaces,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, control_symbols=PLACEHOLDERS, allow_whitespace_only_pieces=True,
        split_digits=True, num_threads=1, minloglevel=2)
    return out.getvalue()


def write_internlm2_tokenizer(out: Path, **flags) -> int:
    """tokenizer.model + the tokenizer json files of an InternLM2-based Sa2VA checkpoint; returns len(tokenizer)."""
    import sentencepiece

    out.mkdir(parents=True, exist_ok=True)
    model = train_sentencepiece(**flags)
    (out / "tokenizer.model").write_bytes(model)
    sp = sentencepiece.SentencePieceProcessor(model_proto=model)
    size = sp.get_piece_size()
    ids = {p: sp.piece_to_id(p) for p in PLACEHOLDERS}
    added = {ids[p]: tok for p, tok in zip(PLACEHOLDERS, CHAT_TOKENS, strict=True)}
    added.update({size + k: tok for k, tok in enumerate(INTERNVL_TOKENS + SA2VA_TOKENS)})
    decoder = {str(i): {"content": c, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                        "special": True} for i, c in sorted(added.items())}
    for i, c in ((0, "<unk>"), (1, "<s>"), (2, "</s>")):
        decoder[str(i)] = {"content": c, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                           "special": True}
    config = {"tokenizer_class": "InternLM2Tokenizer",
              "auto_map": {"AutoTokenizer": ["tokenization_internlm2.InternLM2Tokenizer", None]},
              "add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
              "pad_token": "</s>", "unk_token": "<unk>", "clean_up_tokenization_spaces": False,
              "decode_with_prefix_space": False, "model_max_length": 1000000000000000019884624838656,
              "added_tokens_decoder": dict(sorted(decoder.items(), key=lambda kv: int(kv[0]))),
              "additional_special_tokens": CHAT_TOKENS}
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))
    (out / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "</s>", "unk_token": "<unk>",
         "additional_special_tokens": CHAT_TOKENS}, indent=2))
    (out / "added_tokens.json").write_text(json.dumps({c: i for i, c in sorted(added.items()) if i >= size}, indent=2))
    return size + len(INTERNVL_TOKENS) + len(SA2VA_TOKENS)


VISION_6B = dict(qkv_bias=False, qk_normalization=True, norm_type="rms_norm", initializer_factor=0.1)
VISION_300M = dict(qkv_bias=True, qk_normalization=False, norm_type="layer_norm", initializer_factor=1.0)


def official_config_internlm2(vision_dims: dict = TINY_VISION, llm_dims: dict = TINY_INTERNLM2,
                              vocab_size: int = 92553, vision: str = "300m", spec: Sam2Spec = TINY_SAM2) -> dict:
    """config.json as Sa2VAChatConfig.to_dict() writes it for Sa2VA-8B (vision "300m") or -26B ("6b")."""
    vision_cfg = dict(architectures=["InternVisionModel"], model_type="intern_vit_6b", num_channels=3, patch_size=14,
                      image_size=448, layer_norm_eps=1e-6, hidden_act="gelu", use_flash_attn=True, dropout=0.0,
                      drop_path_rate=0.0, attention_dropout=0.0, initializer_range=0.02,
                      **(VISION_6B if vision == "6b" else VISION_300M), **vision_dims)
    llm = dict(architectures=["InternLM2ForCausalLM"], model_type="internlm2",
               auto_map={"AutoConfig": "configuration_internlm2.InternLM2Config",
                         "AutoModel": "modeling_internlm2.InternLM2ForCausalLM",
                         "AutoModelForCausalLM": "modeling_internlm2.InternLM2ForCausalLM"},
               attn_implementation="eager", bias=False, bos_token_id=1, eos_token_id=2, pad_token_id=2,
               hidden_act="silu", initializer_range=0.02, max_position_embeddings=32768, rms_norm_eps=1e-5,
               rope_scaling={"type": "dynamic", "factor": 2.0}, rope_theta=1000000, tie_word_embeddings=False,
               torch_dtype="bfloat16", use_cache=True, vocab_size=vocab_size, **llm_dims)
    return dict(
        architectures=["Sa2VAChatModel"], model_type="sa2va_chat",
        auto_map={"AutoConfig": "configuration_sa2va_chat.Sa2VAChatConfig",
                  "AutoModel": "modeling_sa2va_chat.Sa2VAChatModel",
                  "AutoModelForCausalLM": "modeling_sa2va_chat.Sa2VAChatModel"},
        vision_config=vision_cfg, llm_config=llm, use_backbone_lora=0, use_llm_lora=0, pad2square=False,
        select_layer=-1, force_image_size=448, downsample_ratio=0.5, template="internlm2_chat",
        dynamic_image_size=True, use_thumbnail=True, ps_version="v2", min_dynamic_patch=1, max_dynamic_patch=12,
        hidden_size=llm["hidden_size"], tie_word_embeddings=False, torch_dtype="bfloat16",
        transformers_version="4.42.3", sa2va_i_ros_sam2=spec.to_config())


def _answer_chain(tok, answer: str) -> list[int]:
    """The prompt's last token (the newline after ``assistant``), the answer's tokens, ``<|im_end|>``."""
    tail = get_template("internlm2_chat").instruction.format(input="x")
    chain = [tok.encode(tail, add_special_tokens=False)[-1], *tok.encode(answer, add_special_tokens=False),
             tok.convert_tokens_to_ids("<|im_end|>")]
    if len(set(chain)) != len(chain):
        raise ValueError(f"answer {answer!r} repeats a token; the tiny model needs distinct tokens")
    return chain


def write_tiny_internlm2_checkpoint(out_dir: str | Path, *, seed: int = 0, answer: str = DEFAULT_ANSWER,
                                    vision: str = "300m", spec: Sam2Spec = TINY_SAM2, vision_dims: dict | None = None,
                                    llm_dims: dict = TINY_INTERNLM2, dtype: torch.dtype = torch.bfloat16) -> Path:
    """A tiny Sa2VA-i checkpoint of the 8B (``vision="300m"``) or 26B (``"6b"``) layout; returns its directory."""
    from sa2va_i_ros.model.checkpoint.config import read_config
    from sa2va_i_ros.model.checkpoint.tokenizer import internlm2_tokenizer
    from sa2va_i_ros.model.sa2va_model import Sa2VAModel
    from sa2va_i_ros.testing.official_layout import official_state, write_shards

    out = Path(out_dir)
    vocab = write_internlm2_tokenizer(out)
    dims = vision_dims or (TINY_VISION_6B if vision == "6b" else TINY_VISION)
    (out / "config.json").write_text(json.dumps(
        official_config_internlm2(dims, llm_dims, vocab, vision, spec), indent=2) + "\n")
    tok = internlm2_tokenizer(out)
    torch.manual_seed(seed)
    model = Sa2VAModel(read_config(out))
    generator = torch.Generator().manual_seed(seed)
    _design_language_model(model.language_model, _answer_chain(tok, answer), generator)
    with torch.no_grad():  # the finetuned decoder starts as the original one, then drifts
        for p_ft, p_orig in zip(model.finetuned_decoder.parameters(), model.sam2.sam_mask_decoder.parameters(),
                                strict=True):
            p_ft.copy_(p_orig + 0.05 * torch.randn(p_orig.shape, generator=generator))
        if vision == "6b":  # non-trivial norm weights, so that a confused q/k norm would show
            for name, p in model.vision_tower.named_parameters():
                if name.endswith(("q_norm.weight", "k_norm.weight")):
                    p.copy_(1 + 0.5 * torch.randn(p.shape, generator=generator))
    state = official_state(model)
    total = sum(t.numel() * dtype.itemsize for t in state.values())
    write_shards(out, {k: (tuple(v.shape), dtype) for k, v in state.items()},
                 lambda name, shape, dt: state[name].to(dt), shard_bytes=total // 2 + 1)
    return out
