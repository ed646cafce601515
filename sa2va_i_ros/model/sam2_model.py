"""SAM2 as Sa2VA uses it, built from the ``sam2`` package's own modules.

Sa2VA hard-codes SAM 2.0 Hiera-L (its ``hf/sam2.py``) with the configuration of
sam2's ``configs/sam2/sam2_hiera_l.yaml`` plus the dynamic-multimask decoder
arguments, and none of sam2's video post-processing (``fill_hole_area`` stays 0,
``binarize_mask_from_pts_for_mem_enc`` stays false). We compose exactly that
config with hydra and instantiate sam2's ``SAM2VideoPredictor``; no SAM2 layer
is re-implemented here.

The finetuned ("modified") mask decoder of Sa2VA is a second ``MaskDecoder`` of
the same configuration, held beside the model (see ``build_finetuned_decoder``).
"""

from __future__ import annotations

import copy
import functools
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

SAM2_CONFIG = "configs/sam2/sam2_hiera_l.yaml"

# Sa2VA's SAM2 = this config + these overrides (Sa2VA hf/sam2.py SAM2.__init__).
SA2VA_OVERRIDES = (
    "++model._target_=sam2.sam2_video_predictor.SAM2VideoPredictor",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
)


@dataclass(frozen=True)
class Sam2Spec:
    """Architecture of the grounding encoder. Defaults: SAM 2.0 Hiera-L, as Sa2VA.

    Official checkpoints carry no SAM2 description (Sa2VA hard-codes Hiera-L);
    our tiny test checkpoints shrink it through the ``sa2va_i_ros_sam2`` entry of
    config.json, read by ``from_config``.
    """

    image_size: int = 1024
    embed_dim: int = 144
    num_heads: int = 2
    stages: tuple[int, ...] = (2, 6, 36, 4)
    global_att_blocks: tuple[int, ...] = (23, 33, 43)
    window_pos_embed_bkg_spatial_size: tuple[int, int] = (7, 7)
    window_spec: tuple[int, ...] = (8, 4, 16, 8)
    d_model: int = 256
    mem_dim: int = 64
    memory_attention_layers: int = 4
    dim_feedforward: int = 2048
    fuser_layers: int = 2
    num_maskmem: int = 7

    @classmethod
    def from_config(cls, entry: dict | None) -> Sam2Spec:
        """Spec from config.json's optional ``sa2va_i_ros_sam2`` entry (None = Hiera-L)."""
        if not entry:
            return cls()
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(entry) - known)
        if unknown:
            raise ValueError(f"unknown keys in config.json 'sa2va_i_ros_sam2': {unknown}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in entry.items()}
        return cls(**values)

    def to_config(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @property
    def backbone_channel_list(self) -> list[int]:
        # Hiera doubles the channels at every stage; the neck lists them coarsest first.
        return [self.embed_dim * 2**i for i in reversed(range(len(self.stages)))]

    def hydra_overrides(self, always: bool = False) -> list[str]:
        """Overrides that turn a sam2 config into this spec.

        None for Hiera-L on sam2_hiera_l.yaml, unless ``always`` (another config
        shrunk or grown to this spec).
        """
        if self == Sam2Spec() and not always:
            return []

        def lst(v):
            return "[" + ",".join(str(x) for x in v) + "]"

        m = "++model."
        attn = m + "memory_attention.layer."
        return [
            f"{m}image_size={self.image_size}",
            f"{m}num_maskmem={self.num_maskmem}",
            f"{m}image_encoder.trunk.embed_dim={self.embed_dim}",
            f"{m}image_encoder.trunk.num_heads={self.num_heads}",
            f"{m}image_encoder.trunk.stages={lst(self.stages)}",
            f"{m}image_encoder.trunk.global_att_blocks={lst(self.global_att_blocks)}",
            f"{m}image_encoder.trunk.window_pos_embed_bkg_spatial_size="
            f"{lst(self.window_pos_embed_bkg_spatial_size)}",
            f"{m}image_encoder.trunk.window_spec={lst(self.window_spec)}",
            f"{m}image_encoder.neck.d_model={self.d_model}",
            f"{m}image_encoder.neck.position_encoding.num_pos_feats={self.d_model}",
            f"{m}image_encoder.neck.backbone_channel_list={lst(self.backbone_channel_list)}",
            f"{m}memory_attention.d_model={self.d_model}",
            f"{m}memory_attention.num_layers={self.memory_attention_layers}",
            f"{attn}d_model={self.d_model}",
            f"{attn}dim_feedforward={self.dim_feedforward}",
            f"{attn}self_attention.embedding_dim={self.d_model}",
            f"{attn}cross_attention.embedding_dim={self.d_model}",
            f"{attn}cross_attention.kv_in_dim={self.mem_dim}",
            f"{m}memory_encoder.out_dim={self.mem_dim}",
            f"++model.memory_encoder.in_dim={self.d_model}",
            f"{m}memory_encoder.position_encoding.num_pos_feats={self.mem_dim}",
            f"++model.memory_encoder.mask_downsampler.embed_dim={self.d_model}",
            f"{m}memory_encoder.fuser.layer.dim={self.d_model}",
            f"{m}memory_encoder.fuser.num_layers={self.fuser_layers}",
        ]


def build_sam2(spec: Sam2Spec | None = None, device: str | torch.device = "cpu",
               config: str = SAM2_CONFIG) -> nn.Module:
    """Instantiate sam2's SAM2VideoPredictor with Sa2VA's configuration (random weights).

    ``config`` is one of sam2's own configs (default: Sa2VA's SAM 2.0 Hiera-L;
    the tracker choice passes the others). Sa2VA's overrides apply to every
    config, so that a chosen tracker differs from Sa2VA's only by its model.
    Weights are loaded afterwards by the checkpoint loader; the model is in eval mode.
    """
    from hydra.utils import instantiate

    sizes = [] if spec is None else spec.hydra_overrides(always=config != SAM2_CONFIG)
    model = instantiate(composed(config, (*SA2VA_OVERRIDES, *sizes)).model, _recursive_=True)
    model.sa2va_i_ros_config = config  # named in exported graphs (tracking/onnx); no effect on the model
    return model.to(device).eval()


@functools.lru_cache(maxsize=16)
def composed(config: str, overrides: tuple[str, ...]):
    """sam2's hydra config with ``overrides``, resolved; composed once per process (``checkpoint.reuse``).

    Safe to share: it comes from the installed sam2 package's files, and
    ``instantiate`` deep-copies the config it is given.
    """
    import sam2  # noqa: F401  (initialises sam2's hydra config module)
    from hydra import compose
    from omegaconf import OmegaConf

    cfg = compose(config_name=config, overrides=list(overrides))
    OmegaConf.resolve(cfg)
    return cfg


def build_finetuned_decoder(sam2_model: nn.Module) -> nn.Module:
    """Sa2VA's finetuned mask decoder: a MaskDecoder configured like the original one."""
    decoder = copy.deepcopy(sam2_model.sam_mask_decoder)
    for p in decoder.parameters():
        p.data = torch.empty_like(p.data)  # weights come from the checkpoint, never copied
    return decoder


def encode_image(sam2_model: nn.Module, pixels: torch.Tensor, encoder: nn.Module | None = None) -> dict:
    """Run the image encoder (trunk + neck) once: raw multi-level features.

    ``pixels``: (B, 3, S, S) already normalised (``preprocess.sam2_pixels``). The
    result is decoder-independent; ``with_decoder_convs`` turns it into the
    ``backbone_out`` of one decoder, so grounding (finetuned decoder) and
    propagation (original decoder) share one encoder pass per frame. ``encoder``
    is a stand-in for the model's own (a compiled wrapper of it). The result
    names the encoder it came from (``"encoder"``), so that a tracker running
    another SAM2 does not take these features for its own.
    """
    out = (sam2_model.image_encoder if encoder is None else encoder)(pixels)
    return {"backbone_fpn": list(out["backbone_fpn"]), "vision_pos_enc": list(out["vision_pos_enc"]),
            "encoder": sam2_model.image_encoder}


def with_decoder_convs(raw: dict, decoder: nn.Module) -> dict:
    """``SAM2Base.forward_image``'s second half for a given decoder.

    Levels 0 and 1 pass through that decoder's ``conv_s0``/``conv_s1``, as
    sam2's ``forward_image`` (original decoder) and Sa2VA's
    ``forward_image(use_modified=True)`` (finetuned decoder) do.
    """
    fpn = list(raw["backbone_fpn"])
    fpn[0] = decoder.conv_s0(fpn[0])
    fpn[1] = decoder.conv_s1(fpn[1])
    out = {"backbone_fpn": fpn, "vision_pos_enc": list(raw["vision_pos_enc"])}
    if "encoder" in raw:
        out["encoder"] = raw["encoder"]
    return out
