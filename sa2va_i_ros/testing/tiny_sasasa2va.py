"""Tiny random-weight SaSaSa2VA checkpoints in the official layout (QuanzhuNiu/SaSaSa2VA-4B's).

A tiny Sa2VA-i checkpoint (``checkpoint.tiny``) turned into SaSaSa2VA's layout
the way its converter writes one: ``config.json`` as ``SaSaSa2VAChatConfig``
(``model_type`` ``sasasa2va_chat``, the SAMURAI fields with ``samurai_mode``
false, ``auto_map`` to its remote code, template ``phi3_chat`` as the 4B: the
Phi-3 strings are plain text to the Qwen tokenizer) and ONE
``grounding_encoder.sam2_model.sam_mask_decoder`` (the finetuned decoder takes
that name; there is no second one). SAM2 stays shrunk through the
``sa2va_i_ros_sam2`` entry.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from sa2va_i_ros.model.checkpoint import keys
from sa2va_i_ros.testing.tiny_sa2va import TINY_SAM2, write_tiny_checkpoint

# SaSaSa2VA decodes every frame of a video (100 and more): a smaller SAM2 input keeps tests cheap
TINY_SASASA2VA_SAM2 = replace(TINY_SAM2, image_size=128)

# SaSaSa2VAChatConfig's defaults for the SAMURAI fields (configuration_sasasa2va_chat.py)
SAMURAI_FIELDS = {"samurai_mode": False, "stable_frames_threshold": 15, "stable_ious_threshold": 0.3,
                  "min_obj_score_logits": -1, "kf_score_weight": 0.15, "memory_bank_iou_threshold": 0.5,
                  "memory_bank_obj_score_threshold": 0.0, "memory_bank_kf_score_threshold": 0.0}
TEMPLATE_4B = "phi3_chat"


def sasasa2va_config(config: dict, template: str = TEMPLATE_4B) -> dict:
    """A Sa2VA config.json rewritten as SaSaSa2VAChatConfig.to_dict() writes it."""
    out = dict(config)
    out.update(architectures=["SaSaSa2VAChatModel"], model_type="sasasa2va_chat", template=template,
               auto_map={"AutoConfig": "configuration_sasasa2va_chat.SaSaSa2VAChatConfig",
                         "AutoModel": "modeling_sasasa2va_chat.SaSaSa2VAChatModel",
                         "AutoModelForCausalLM": "modeling_sasasa2va_chat.SaSaSa2VAChatModel"},
               **SAMURAI_FIELDS)
    return out


def single_decoder_state(state: dict) -> dict:
    """Sa2VA-i tensors -> SaSaSa2VA's: the finetuned decoder becomes the only ``sam_mask_decoder``."""
    out = {}
    for name, tensor in state.items():
        if name.startswith(keys.SAM2_DECODER):
            continue  # the original SAM 2.0 decoder: SaSaSa2VA has none
        if name.startswith(keys.MODIFIED_DECODER):
            name = keys.SAM2_DECODER + name[len(keys.MODIFIED_DECODER):]
        out[name] = tensor
    return out


def write_tiny_sasasa2va(out_dir: str | Path, *, template: str = TEMPLATE_4B, **tiny_options) -> Path:
    """Write a tiny SaSaSa2VA checkpoint; ``tiny_options`` go to ``write_tiny_checkpoint`` (seed, answer...)."""
    tiny_options.setdefault("spec", TINY_SASASA2VA_SAM2)
    return to_sasasa2va(write_tiny_checkpoint(out_dir, sa2va_i=True, **tiny_options), template)


def to_sasasa2va(out: Path, template: str = TEMPLATE_4B) -> Path:
    """Turn a Sa2VA-i checkpoint directory (both decoders) into SaSaSa2VA's layout, in place."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    out = Path(out)
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps(sasasa2va_config(config, template), indent=2) + "\n")
    index_path = out / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    weight_map, total = {}, 0
    for fname in sorted(set(index["weight_map"].values())):
        with safe_open(str(out / fname), framework="pt") as f:
            state = single_decoder_state({k: f.get_tensor(k) for k in f.keys()})  # noqa: SIM118
        save_file(state, str(out / fname), metadata={"format": "pt"})
        weight_map.update({k: fname for k in state})
        total += sum(v.numel() * v.element_size() for v in state.values())
    index["weight_map"] = dict(sorted(weight_map.items()))
    index["metadata"]["total_size"] = total
    index_path.write_text(json.dumps(index, indent=2))
    return out
