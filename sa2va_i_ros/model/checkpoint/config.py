"""config.json of a Sa2VA checkpoint: the fields inference needs, and support checks.

The official layout is ``Sa2VAChatConfig.to_dict()`` (model_type ``sa2va_chat``):
``vision_config`` (InternViT), ``llm_config`` (the language model's own config with
``architectures``), ``template``, ``select_layer``, ``downsample_ratio``,
``ps_version``, ``force_image_size``... SAM2 is not described there: Sa2VA
hard-codes SAM 2.0 Hiera-L. Our tiny test checkpoints add one optional entry,
``sa2va_i_ros_sam2``, to shrink it (absent from every official checkpoint).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sa2va_i_ros.errors import CheckpointError, UnsupportedModelError
from sa2va_i_ros.model.prompt import ChatTemplate, get_template
from sa2va_i_ros.model.sam2_model import Sam2Spec

SUPPORTED_LLMS = ("Qwen2ForCausalLM", "InternLM2ForCausalLM")
# config.json model_type -> the pipeline that runs it (SaSaSa2VA: grounding/sasasa2va, docs/SASASA2VA.md)
MODEL_KINDS = {"sa2va_chat": "sa2va", "sasasa2va_chat": "sasasa2va"}
SAM2_ENTRY = "sa2va_i_ros_sam2"


@dataclass(frozen=True)
class Sa2VAConfig:
    name: str
    template: ChatTemplate
    select_layer: int
    downsample_ratio: float
    ps_version: str
    image_size: int
    patch_size: int
    vision: dict
    llm: dict
    llm_arch: str
    sam2: Sam2Spec
    raw: dict

    @property
    def kind(self) -> str:
        """"sa2va" (Sa2VA / Sa2VA-i: GroundingEngine) or "sasasa2va" (its own pipeline), from model_type."""
        return MODEL_KINDS.get(self.raw.get("model_type"), "sa2va")

    @property
    def tokens_per_frame(self) -> int:
        return int((self.image_size // self.patch_size) ** 2 * self.downsample_ratio**2)


def _unsupported(name: str, raw: dict) -> str | None:
    """Why this checkpoint cannot be loaded yet, or None."""
    llm = raw.get("llm_config") or {}
    arch = (llm.get("architectures") or ["?"])[0]
    if "llm_config" not in raw and ("text_config" in raw or raw.get("model_type") != "sa2va_chat"):
        return (f"{name}: Sa2VA variants built on Qwen2.5-VL / Qwen3-VL (or any config without "
                "'llm_config') are not supported yet; supported: the InternVL-based Sa2VA and Sa2VA-i "
                "models (Sa2VA-1B/4B/8B/26B, Sa2VA-i-1B/4B/8B/26B, Sa2VA-InternVL3-*)")
    if arch not in SUPPORTED_LLMS:
        return (f"{name}: language model {arch} is not supported yet "
                f"(supported: {', '.join(SUPPORTED_LLMS)})")
    if raw.get("use_backbone_lora") or raw.get("use_llm_lora"):
        return f"{name}: checkpoints with un-merged LoRA adapters are not supported; merge them first"
    return None


def read_config(directory: Path, name: str | None = None) -> Sa2VAConfig:
    """Parse and check ``directory/config.json``; ``name`` is used in messages."""
    name = name or str(directory)
    path = directory / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{name}: no config.json in {directory}")
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{name}: config.json is not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise CheckpointError(f"{name}: config.json does not hold an object")
    model_type = raw.get("model_type")
    if model_type not in (*MODEL_KINDS, None) and "llm_config" not in raw:
        raise UnsupportedModelError(f"{name}: model_type {model_type!r} is not a Sa2VA checkpoint")
    reason = _unsupported(name, raw)
    if reason:
        raise UnsupportedModelError(reason)
    missing = [k for k in ("vision_config", "llm_config", "template") if not raw.get(k)]
    if missing:
        raise CheckpointError(f"{name}: config.json lacks {', '.join(missing)}")
    vision, llm = dict(raw["vision_config"]), dict(raw["llm_config"])
    try:
        template = get_template(str(raw["template"]))
    except KeyError as exc:
        raise UnsupportedModelError(f"{name}: {exc.args[0]}") from exc
    image_size = raw.get("force_image_size") or vision.get("image_size", 448)
    try:
        sam2 = Sam2Spec.from_config(raw.get(SAM2_ENTRY))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{name}: bad '{SAM2_ENTRY}' entry ({exc})") from exc
    return Sa2VAConfig(
        name=name,
        template=template,
        select_layer=int(raw.get("select_layer", -1)),
        downsample_ratio=float(raw.get("downsample_ratio", 0.5)),
        ps_version=str(raw.get("ps_version", "v1")),
        image_size=int(image_size),
        patch_size=int(vision.get("patch_size", 14)),
        vision=vision,
        llm=llm,
        llm_arch=llm["architectures"][0],
        sam2=sam2,
        raw=raw,
    )
