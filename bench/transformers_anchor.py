"""The load a user would otherwise run: transformers' own ``from_pretrained`` of the equivalent native models.

The anchor of ``load.seconds_ratio_vs_transformers``. From the bench's
Sa2VA-i-1B-size checkpoint (``bench_load.ensure_model``) it writes once, next
to it (``<checkpoint>_transformers/``):

* ``internvl/``: ``InternVLForConditionalGeneration`` (InternViT-300M,
  projector, Qwen2.5-0.5B with its own untied lm_head) holding the SAME
  tensors as the checkpoint, re-keyed for it (our network is built from the
  same transformers classes, so re-keying is renaming), bfloat16, with the
  checkpoint's tokenizer files;
* ``sam2/``: ``Sam2VideoModel`` with SAM 2.0 Hiera-L's dimensions (224.4 M
  parameters, as sam2's own Hiera-L), bfloat16. transformers' SAM2 names and
  splits its tensors differently from the sam2 package, so these are its own
  random weights of the same sizes, not the checkpoint's values (values do not
  change the time of a load).

Left out on that side: Sa2VA's finetuned mask decoder and ``text_hidden_fcs``
(4.9 M of 1.17 B parameters), which no native class has. The transformers load
is then tokenizer + ``InternVLForConditionalGeneration.from_pretrained`` +
``Sam2VideoModel.from_pretrained``, each in the run dtype, on the CPU.
"""

from __future__ import annotations

import shutil
from pathlib import Path

TOKENIZER_FILES = ("tokenizer_config.json", "vocab.json", "merges.txt", "added_tokens.json",
                   "special_tokens_map.json", "tokenizer.json")
HIERA_L = dict(model_type="sam2_hiera_det_model", hidden_size=144, num_attention_heads=2,
               blocks_per_stage=[2, 6, 36, 4], embed_dim_per_stage=[144, 288, 576, 1152],
               num_attention_heads_per_stage=[2, 4, 8, 16], global_attention_blocks=[23, 33, 43],
               window_size_per_stage=[8, 4, 16, 8])


def internvl_config(cfg):
    from transformers import InternVLConfig

    from sa2va_i_ros.model.sa2va_model import language_config, vision_config

    return InternVLConfig(vision_config=vision_config(cfg).to_dict(), text_config=language_config(cfg).to_dict(),
                          downsample_ratio=cfg.downsample_ratio, projector_hidden_act="gelu",
                          vision_feature_layer=cfg.select_layer, tie_word_embeddings=False)


def sam2_config():
    from transformers import Sam2VideoConfig

    return Sam2VideoConfig(vision_config=dict(backbone_config=HIERA_L, backbone_channel_list=[1152, 576, 288, 144]))


def native_name(key: str) -> str:
    """Our parameter name -> InternVLForConditionalGeneration's."""
    if key.startswith("language_model.lm_head."):
        return key.removeprefix("language_model.")
    if key.startswith("language_model.model."):
        return "model.language_model." + key.removeprefix("language_model.model.")
    return "model." + key


def ensure_native(directory: Path) -> Path:
    """``<directory>_transformers`` with ``internvl/`` and ``sam2/`` (written once)."""
    out = directory.parent / f"{directory.name}_transformers"
    if (out / "done").is_file():
        return out
    import torch
    from transformers import InternVLForConditionalGeneration, Sam2VideoModel

    from sa2va_i_ros.model.checkpoint.build import load_model
    from sa2va_i_ros.model.checkpoint.config import read_config

    cfg = read_config(directory)
    net, _ = load_model(cfg, directory, "bench", torch.device("cpu"), torch.bfloat16)
    parts = ("vision_tower.", "multi_modal_projector.", "language_model.")
    tensors = {native_name(k): v for k, v in net.state_dict().items() if k.startswith(parts)}
    with torch.device("meta"):
        native = InternVLForConditionalGeneration(internvl_config(cfg))
    native.load_state_dict(tensors, strict=True, assign=True)
    native.save_pretrained(out / "internvl")
    for name in TOKENIZER_FILES:
        if (directory / name).is_file():
            shutil.copy(directory / name, out / "internvl" / name)
    del net, native, tensors
    sam2 = Sam2VideoModel(sam2_config()).to(torch.bfloat16)
    sam2.save_pretrained(out / "sam2")
    (out / "done").write_text("ok\n")
    return out


def load_native(out: Path, dtype):
    """What a user of transformers runs: tokenizer, InternVL and SAM2 video model, from_pretrained."""
    from transformers import AutoTokenizer, InternVLForConditionalGeneration, Sam2VideoModel

    tokenizer = AutoTokenizer.from_pretrained(out / "internvl")
    internvl = InternVLForConditionalGeneration.from_pretrained(out / "internvl", dtype=dtype).eval()
    sam2 = Sam2VideoModel.from_pretrained(out / "sam2", dtype=dtype).eval()
    return tokenizer, internvl, sam2
