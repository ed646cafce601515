"""A SaSaSa2VA checkpoint in native classes: Sa2VA's network with SAM2's single (re-finetuned) decoder.

SaSaSa2VA checkpoints (``model_type`` ``sasasa2va_chat``) store the same tensor
names as Sa2VA (its converter renames ``mllm.model.`` -> '' and ``.gamma`` ->
``.g_weight``) with ONE ``sam_mask_decoder``: trained further
(``frozen_sam2_decoder=False``), it both prompts and tracks, so here it fills
SAM2's own decoder and there is no second one. The config adds SAMURAI fields
(``samurai_mode`` false and its thresholds); SAMURAI is off in the released
evaluation and is not ported.
"""

from __future__ import annotations

from sa2va_i_ros.errors import UnsupportedModelError
from sa2va_i_ros.model.sa2va_model import Sa2VAModel


class SaSaSa2VAModel(Sa2VAModel):
    """Sa2VA's modules without the separate finetuned decoder: ``sam2.sam_mask_decoder`` is the only one."""

    def __init__(self, cfg, empty: bool = False):
        super().__init__(cfg, empty=empty)
        del self.finetuned_decoder


def sasasa2va_only(model: str, cfg) -> None:
    if cfg.kind != "sasasa2va":
        raise UnsupportedModelError(f"{model}: model_type {cfg.raw.get('model_type')!r} is not a SaSaSa2VA "
                                    "checkpoint (sasasa2va_chat); load it with GroundingEngine / VideoPipeline")
    if cfg.raw.get("samurai_mode"):
        raise UnsupportedModelError(f"{model}: samurai_mode is on in config.json; SAMURAI tracking is not "
                                    "ported (SaSaSa2VA's released evaluation runs with it off)")
