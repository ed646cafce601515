"""The Sa2VA network assembled from native classes.

* vision tower and projector: transformers' ``InternVLVisionModel`` and
  ``InternVLMultiModalProjector`` (InternViT-300M or -6B, and Sa2VA's ``mlp1``);
* language model: transformers' ``Qwen2ForCausalLM`` (1B/4B) or
  ``LlamaForCausalLM`` for InternLM2 (8B/26B, see ``checkpoint.internlm2``);
* ``text_hidden_fcs``: Linear(H, H), ReLU, Linear(H, 256), Dropout(0), as Sa2VA;
* grounding encoder: the ``sam2`` package's SAM2 (original mask decoder inside)
  plus Sa2VA's finetuned decoder beside it.

``Sa2VAModel(cfg)`` has random weights (the tiny test checkpoints are written
from it); ``Sa2VAModel(cfg, empty=True)`` has meta parameters that the loader
allocates in their final dtype and device and reads from disk.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from transformers import InternVLConfig, InternVLVisionModel, LlamaForCausalLM, Qwen2ForCausalLM
from transformers.models.internvl.modeling_internvl import InternVLMultiModalProjector

from sa2va_i_ros.model.checkpoint import native_config
from sa2va_i_ros.model.checkpoint.config import Sa2VAConfig
from sa2va_i_ros.model.checkpoint.materialise import parameters_on_meta
from sa2va_i_ros.model.sam2_model import build_finetuned_decoder, build_sam2

LANGUAGE_MODELS = {"Qwen2ForCausalLM": Qwen2ForCausalLM, "InternLM2ForCausalLM": LlamaForCausalLM}


def vision_config(cfg: Sa2VAConfig):
    return native_config.vision_config(cfg.vision, cfg.image_size, cfg.patch_size)


def language_config(cfg: Sa2VAConfig):
    return native_config.language_config(cfg.llm_arch, cfg.llm)


class Sa2VAModel(nn.Module):
    """Every network of a Sa2VA checkpoint, under the names ``checkpoint.keys`` maps to."""

    def __init__(self, cfg: Sa2VAConfig, empty: bool = False):
        super().__init__()
        self.cfg = cfg
        v_cfg, l_cfg = vision_config(cfg), language_config(cfg)
        with parameters_on_meta() if empty else contextlib.nullcontext():
            self.vision_tower = InternVLVisionModel(v_cfg)
            proj_cfg = InternVLConfig(vision_config=v_cfg.to_dict(), text_config=l_cfg.to_dict(),
                                      downsample_ratio=cfg.downsample_ratio, projector_hidden_act="gelu")
            self.multi_modal_projector = InternVLMultiModalProjector(proj_cfg)
            self.language_model = LANGUAGE_MODELS[cfg.llm_arch](l_cfg)
            self.sam2 = build_sam2(cfg.sam2, device="meta" if empty else "cpu")
            self.finetuned_decoder = build_finetuned_decoder(self.sam2)
            hidden = l_cfg.hidden_size
            self.text_hidden_fcs = nn.Sequential(
                nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, self.sam2.hidden_dim),
                nn.Dropout(0.0))
        # InternViT's q/k norms use the config's eps; transformers fixes theirs at 1e-6
        eps = float(cfg.vision.get("layer_norm_eps", 1e-6))
        for name, module in self.vision_tower.named_modules():
            if name.endswith(("attention.q_norm", "attention.k_norm")) and hasattr(module, "variance_epsilon"):
                module.variance_epsilon = eps
        self.eval()

    @property
    def tied_lm_head(self) -> bool:
        """The language model shares lm_head with embed_tokens (lm_head may be absent on disk)."""
        lm = self.language_model
        return lm.lm_head.weight is lm.model.embed_tokens.weight

    def parameter_names(self) -> dict[str, torch.Size]:
        """Every tensor the checkpoint must fill, with its shape (a tied lm_head is listed too)."""
        return {k: v.shape for k, v in self.state_dict(keep_vars=True).items()}
