"""The Sa2VA network assembled from native classes, with random weights.

* vision tower and projector: transformers' ``InternVLVisionModel`` and
  ``InternVLMultiModalProjector`` (InternViT and Sa2VA's ``mlp1``);
* language model: transformers' ``Qwen2ForCausalLM``;
* ``text_hidden_fcs``: Linear(H, H), ReLU, Linear(H, 256), Dropout(0), as Sa2VA;
* grounding encoder: the ``sam2`` package's SAM2 (original mask decoder inside)
  plus Sa2VA's finetuned decoder beside it.

The checkpoint loader fills every parameter; nothing here reads weights.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import InternVLConfig, InternVLVisionConfig, InternVLVisionModel, Qwen2Config, Qwen2ForCausalLM
from transformers.models.internvl.modeling_internvl import InternVLMultiModalProjector

from .checkpoint.config import Sa2VAConfig
from .sam2_model import build_finetuned_decoder, build_sam2


def vision_config(cfg: Sa2VAConfig) -> InternVLVisionConfig:
    """InternViT's config.json fields in transformers' names (defaults: InternVisionConfig's)."""
    v = cfg.vision
    return InternVLVisionConfig(
        hidden_size=v.get("hidden_size", 3200),
        num_hidden_layers=v.get("num_hidden_layers", 48),
        num_attention_heads=v.get("num_attention_heads", 25),
        intermediate_size=v.get("intermediate_size", 12800),
        attention_bias=bool(v.get("qkv_bias", False)),
        use_qk_norm=bool(v.get("qk_normalization", True)),
        hidden_act=v.get("hidden_act", "gelu"),
        norm_type=v.get("norm_type", "rms_norm"),
        layer_norm_eps=v.get("layer_norm_eps", 1e-6),
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
        use_mean_pooling=True,  # no final norm: InternViT's last_hidden_state is the last block's output
    )


def language_config(cfg: Sa2VAConfig) -> Qwen2Config:
    llm = {k: v for k, v in cfg.llm.items() if not k.startswith("_")}
    return Qwen2Config.from_dict(llm)


class Sa2VAModel(nn.Module):
    """Every network of a Sa2VA checkpoint, under the names ``checkpoint.keys`` maps to."""

    def __init__(self, cfg: Sa2VAConfig):
        super().__init__()
        self.cfg = cfg
        v_cfg, l_cfg = vision_config(cfg), language_config(cfg)
        self.vision_tower = InternVLVisionModel(v_cfg)
        proj_cfg = InternVLConfig(vision_config=v_cfg.to_dict(), text_config=l_cfg.to_dict(),
                                  downsample_ratio=cfg.downsample_ratio, projector_hidden_act="gelu")
        self.multi_modal_projector = InternVLMultiModalProjector(proj_cfg)
        self.language_model = Qwen2ForCausalLM(l_cfg)
        self.sam2 = build_sam2(cfg.sam2)
        self.finetuned_decoder = build_finetuned_decoder(self.sam2)
        hidden = l_cfg.hidden_size
        self.text_hidden_fcs = nn.Sequential(
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, self.sam2.hidden_dim),
            nn.Dropout(0.0))
        self.eval()

    @property
    def tied_lm_head(self) -> bool:
        """The language model shares lm_head with embed_tokens (lm_head may be absent on disk)."""
        lm = self.language_model
        return lm.lm_head.weight is lm.model.embed_tokens.weight

    def parameter_names(self) -> dict[str, torch.Size]:
        """Every tensor the checkpoint must fill, with its shape (tied duplicates listed once)."""
        return {k: v.shape for k, v in self.state_dict(keep_vars=True).items()}
