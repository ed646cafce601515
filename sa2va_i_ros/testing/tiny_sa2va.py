"""Tiny random-weight Sa2VA-i checkpoints in the official layout.

Weights cannot be downloaded here, so tests and the demo build a checkpoint of
the same layout as kumuji/Sa2VA-i-1B: config.json with the official fields and
template, safetensors (sharded, with an index) under the official tensor names
with both SAM2 decoders, and a Qwen2 tokenizer holding ``<img>``, ``</img>``,
``<IMG_CONTEXT>`` and ``[SEG]``, built offline. It is loaded by the same code
as a real checkpoint.

The language model answers through ordinary greedy generation. Its weights are
random except for a designed "answer chain": a few hidden dimensions are
reserved, the embedding of each answer token sets its own reserved dimension,
no layer writes into those dimensions, and ``lm_head`` maps the reserved
dimension of a token to the next answer token. After the prompt's final
newline the model therefore says the answer (default "Sure, [SEG].") whatever
the frames and query, while the other dimensions of the hidden states (and so
the [SEG] embedding) still depend on the images and the query through random
attention. Only the SAM2 part is shrunk through config.json's
``sa2va_i_ros_sam2`` entry (official checkpoints have none: Hiera-L).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from pathlib import Path

import torch

from sa2va_i_ros.model.checkpoint import keys
from sa2va_i_ros.model.prompt import SEG_TOKEN
from sa2va_i_ros.model.sam2_model import Sam2Spec

QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# InternVL's added tokens, then Sa2VA's (same order as the official tokenizers).
INTERNVL_TOKENS = ["<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>"]
SA2VA_TOKENS = [SEG_TOKEN, "<p>", "</p>", "<vp>", "</vp>"]

TINY_SAM2 = Sam2Spec(image_size=256, embed_dim=8, num_heads=1, stages=(1, 1, 2, 1), global_att_blocks=(3,),
                     window_spec=(8, 4, 4, 2), d_model=32, mem_dim=16, memory_attention_layers=1,
                     dim_feedforward=64, fuser_layers=1)
TINY_VISION = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
TINY_LLM = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                intermediate_size=128)
DEFAULT_ANSWER = "Sure, [SEG]."
_CORPUS = (
    "Sure, [SEG]. Please segment the cup left of the bowl. user assistant system. "
    "Please segment the red cup, the blue bowl, the green box and the yellow bottle on the table. "
    "the person, the car, the dog, the cat, the robot arm, the object moving to the right. "
    "Which one is closest? Sure. It is the mug next to the plate. I cannot find it."
)


def build_tokenizer(vocab_size: int = 640):
    """A byte-level BPE Qwen2 tokenizer trained in memory, with the official added tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    bpe.train_from_iterator([_CORPUS] * 20, trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    tok = Qwen2Tokenizer(vocab=model["vocab"], merges=merges)  # adds <|endoftext|> (unk/eos/pad)
    tok.add_special_tokens({"additional_special_tokens": QWEN_SPECIALS[1:]})
    tok.add_tokens(INTERNVL_TOKENS + SA2VA_TOKENS, special_tokens=True)
    tok.eos_token = "<|im_end|>"
    tok.pad_token = "<|endoftext|>"
    return tok


def write_tokenizer_files(tok, out: Path) -> None:
    """The tokenizer files of an official checkpoint (transformers 4.4x layout).

    vocab.json + merges.txt + added_tokens.json + special_tokens_map.json and a
    tokenizer_config.json with ``added_tokens_decoder``; no tokenizer.json, as on
    the hub, so loading exercises the slow-file path a real checkpoint takes.
    """
    backend = json.loads(tok.backend_tokenizer.to_str())
    added = {t["content"]: t["id"] for t in backend["added_tokens"]}
    merges = [m if isinstance(m, str) else " ".join(m) for m in backend["model"]["merges"]]
    vocab = {k: v for k, v in backend["model"]["vocab"].items() if k not in added}
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (out / "added_tokens.json").write_text(json.dumps(added, indent=2, ensure_ascii=False))
    specials = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                "additional_special_tokens": QWEN_SPECIALS[1:]}
    (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))
    decoder = {str(i): {"content": c, "lstrip": False, "normalized": False, "rstrip": False,
                        "single_word": False, "special": True} for c, i in sorted(added.items(), key=lambda x: x[1])}
    config = {"add_prefix_space": False, "added_tokens_decoder": decoder, **specials, "bos_token": None,
              "clean_up_tokenization_spaces": False, "errors": "replace", "model_max_length": 32768,
              "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer", "unk_token": None}
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))


def _answer_chain(tok, answer: str) -> list[int]:
    """Token ids the model must say: the prompt's last token, the answer, the stop token."""
    start = tok.convert_tokens_to_ids("Ċ")  # the newline ending "<|im_start|>assistant\n"
    chain = [start, *tok.encode(answer), tok.convert_tokens_to_ids("<|im_end|>")]
    if len(set(chain)) != len(chain):
        raise ValueError(f"answer {answer!r} repeats a token; the tiny model needs distinct tokens")
    return chain


@torch.no_grad()
def randomize_language_model(lm, generator: torch.Generator) -> None:
    """Random weights large enough that images move the [SEG] state; unit RMSNorm weights."""
    scale = 0.2 * (64 / lm.model.embed_tokens.weight.shape[1]) ** 0.5  # keeps wider stacks from exploding
    for p in lm.parameters():
        p.copy_(torch.randn(p.shape, generator=generator) * (scale if p.dim() == 2 else 0.02))
    for norm in [lm.model.norm, *[m for layer in lm.model.layers
                                  for m in (layer.input_layernorm, layer.post_attention_layernorm)]]:
        norm.weight.fill_(1.0)


@torch.no_grad()
def _design_language_model(lm, chain: list[int], generator: torch.Generator) -> None:
    """Install the answer chain into a randomly initialised Qwen2ForCausalLM."""
    reserved = len(chain) - 1
    embed = lm.model.embed_tokens.weight
    randomize_language_model(lm, generator)
    embed[:, :reserved] = 0.0
    for layer in lm.model.layers:
        layer.self_attn.o_proj.weight[:reserved] = 0.0
        layer.mlp.down_proj.weight[:reserved] = 0.0
    head = lm.lm_head.weight
    head.mul_(0.1)
    head[:, :reserved] = 0.0
    for dim, (token, successor) in enumerate(itertools.pairwise(chain)):
        embed[token, dim] = 4.0
        head[successor, dim] = 100.0


def _official_state(model, sa2va_i: bool) -> dict[str, torch.Tensor]:
    """Our modules' tensors under the official names (the inverse of ``keys.map_name``)."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    vision_parts = {v: k for k, v in keys._VISION_LAYER_PARTS.items()}
    for name, tensor in model.state_dict().items():
        t = tensor.detach().clone().contiguous()
        if name.startswith("vision_tower."):
            rest = name[len("vision_tower."):]
            m = re.match(r"encoder\.layer\.(\d+)\.(.+)$", rest)
            if m is None:
                off = {v: k for k, v in keys._VISION_EMBEDDINGS.items()}.get(name) or \
                    "vision_model.embeddings.patch_embedding." + name.rsplit(".", 1)[1]
                out[off] = t
                continue
            layer, part = m.groups()
            base = f"vision_model.encoder.layers.{layer}."
            if part in ("lambda_1", "lambda_2"):
                out[base + ("ls1" if part == "lambda_1" else "ls2")] = t
            elif re.match(r"attention\.[qkv]_proj\.", part):
                qkv.setdefault(base + "attn.qkv." + part.rsplit(".", 1)[1], {})[part[10]] = t
            else:
                new = next(k for k in vision_parts if part.startswith(k))
                out[base + vision_parts[new] + part[len(new):]] = t
        elif name.startswith("multi_modal_projector."):
            out[{v: k for k, v in keys._PROJECTOR.items()}[name.rsplit(".", 1)[0] + "."] +
                name.rsplit(".", 1)[1]] = t
        elif name.startswith(("language_model.", "text_hidden_fcs.")):
            out[name] = t
        elif name.startswith("finetuned_decoder."):
            prefix = keys.MODIFIED_DECODER if sa2va_i else keys.SAM2_DECODER
            out[prefix + name[len("finetuned_decoder."):]] = t
        elif name.startswith("sam2."):
            rest = re.sub(r"\.gamma$", ".g_weight", name[len("sam2."):])
            if sa2va_i or not rest.startswith("sam_mask_decoder."):
                out[keys.SAM2_PREFIX + rest] = t
    for fused, parts in qkv.items():
        out[fused] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out


def official_config(tok, spec: Sam2Spec, vision_dims: dict = TINY_VISION, llm_dims: dict = TINY_LLM,
                    vocab_size: int | None = None) -> dict:
    """config.json as Sa2VAChatConfig.to_dict() writes it, plus our SAM2 entry."""
    vision = dict(
        architectures=["InternVisionModel"], model_type="intern_vit_6b", num_channels=3, patch_size=14,
        image_size=448, qkv_bias=True, qk_normalization=False, norm_type="layer_norm", layer_norm_eps=1e-6,
        hidden_act="gelu", use_flash_attn=True, dropout=0.0, drop_path_rate=0.0, attention_dropout=0.0,
        initializer_range=0.02, initializer_factor=1.0, **vision_dims)
    llm = dict(
        architectures=["Qwen2ForCausalLM"], model_type="qwen2", vocab_size=vocab_size or len(tok),
        max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6, hidden_act="silu",
        tie_word_embeddings=False, use_sliding_window=False, sliding_window=32768, max_window_layers=21,
        attention_dropout=0.0, initializer_range=0.02, use_cache=True, torch_dtype="bfloat16",
        bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"), **llm_dims)
    llm_hidden = llm["hidden_size"]
    return dict(
        architectures=["Sa2VAChatModel"], model_type="sa2va_chat",
        auto_map={"AutoConfig": "configuration_sa2va_chat.Sa2VAChatConfig",
                  "AutoModel": "modeling_sa2va_chat.Sa2VAChatModel",
                  "AutoModelForCausalLM": "modeling_sa2va_chat.Sa2VAChatModel"},
        vision_config=vision, llm_config=llm, use_backbone_lora=0, use_llm_lora=0, pad2square=False,
        select_layer=-1, force_image_size=448, downsample_ratio=0.5, template="qwen_chat",
        dynamic_image_size=True, use_thumbnail=True, ps_version="v2", min_dynamic_patch=1,
        max_dynamic_patch=12, hidden_size=llm_hidden, tie_word_embeddings=False, torch_dtype="bfloat16",
        transformers_version="4.42.3", sa2va_i_ros_sam2=spec.to_config())


def write_tiny_checkpoint(out_dir: str | Path, *, seed: int = 0, answer: str = DEFAULT_ANSWER,
                          sa2va_i: bool = True, spec: Sam2Spec = TINY_SAM2, vision_dims: dict = TINY_VISION,
                          llm_dims: dict = TINY_LLM, vocab_size: int | None = None,
                          design: Callable | None = None) -> Path:
    """Write a tiny checkpoint; returns its directory.

    The dims, SAM2 spec and vocabulary size can be raised to build larger
    random-weight models of the same layout (benchmarks use real-size ones).
    ``design(model, tokenizer, generator)``, when given, sets the language model's
    weights in place of the ``answer`` chain (see ``answer_rig``).

    ``sa2va_i=False`` writes the plain Sa2VA layout (its ``sam_mask_decoder`` is the
    finetuned one) and the original decoder into ``OUT/sam2_original.safetensors``
    in the sam2 package's layout, as a user would convert sam2_hiera_large.pt.
    """
    from safetensors.torch import save_file

    from sa2va_i_ros.model.checkpoint.config import read_config
    from sa2va_i_ros.model.sa2va_model import Sa2VAModel

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer()
    chain = _answer_chain(tok, answer) if design is None else []
    cfg_dict = official_config(tok, spec, vision_dims, llm_dims, vocab_size)
    (out / "config.json").write_text(json.dumps(cfg_dict, indent=2) + "\n")
    write_tokenizer_files(tok, out)

    torch.manual_seed(seed)
    model = Sa2VAModel(read_config(out))
    generator = torch.Generator().manual_seed(seed)
    if design is None:
        _design_language_model(model.language_model, chain, generator)
    else:
        design(model, tok, generator)
    with torch.no_grad():  # the finetuned decoder starts as the original one, then drifts
        for p_ft, p_orig in zip(model.finetuned_decoder.parameters(), model.sam2.sam_mask_decoder.parameters(),
                                strict=True):
            p_ft.copy_(p_orig + 0.05 * torch.randn(p_orig.shape, generator=generator))

    state = {k: v.to(torch.bfloat16) for k, v in _official_state(model, sa2va_i).items()}
    shards = {"model-00001-of-00002.safetensors": {k: v for k, v in state.items() if not k.startswith("grounding")},
              "model-00002-of-00002.safetensors": {k: v for k, v in state.items() if k.startswith("grounding")}}
    weight_map = {}
    for fname, part in shards.items():
        save_file(part, str(out / fname), metadata={"format": "pt"})
        weight_map.update({k: fname for k in part})
    total = sum(v.numel() * v.element_size() for v in state.values())
    (out / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, indent=2))
    if not sa2va_i:
        original = {k: v.detach().clone().contiguous() for k, v in model.sam2.state_dict().items()}
        save_file({k: v.to(torch.bfloat16) for k, v in original.items()},
                  str(out / "sam2_original.safetensors"), metadata={"format": "pt"})
    return out
