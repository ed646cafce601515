"""Image tokens for the language model: InternViT -> pixel shuffle -> projector.

Mirrors Sa2VA's ``extract_feature``: the vision tower's last hidden state (or
``hidden_states[select_layer]``), CLS dropped, reshaped to a square grid,
``pixel_shuffle`` with the configured ratio and version, flattened, then
``mlp1`` (here transformers' InternVL projector, same layers).
"""

from __future__ import annotations

import torch


def pixel_shuffle(x: torch.Tensor, scale_factor: float = 0.5, ps_version: str = "v2") -> torch.Tensor:
    """InternVL's pixel shuffle on (N, W, H, C): fold 1/scale^2 neighbours into channels.

    ``v1`` leaves height and width swapped (a transposed grid), as InternVL's
    code does for that version; ``v2`` swaps them back.
    """
    n, w, h, c = x.size()
    x = x.view(n, w, int(h * scale_factor), int(c / scale_factor))
    x = x.permute(0, 2, 1, 3).contiguous()
    x = x.view(n, int(h * scale_factor), int(w * scale_factor), int(c / (scale_factor * scale_factor)))
    if ps_version != "v1":
        x = x.permute(0, 2, 1, 3).contiguous()
    return x


def image_embeddings(model, pixels: torch.Tensor) -> torch.Tensor:
    """(n_frames, tokens_per_frame, llm_hidden) embeddings for (n_frames, 3, 448, 448) pixels."""
    cfg = model.cfg
    if cfg.select_layer == -1:
        vit = model.vision_tower(pixel_values=pixels).last_hidden_state
    else:
        vit = model.vision_tower(pixel_values=pixels, output_hidden_states=True).hidden_states[cfg.select_layer]
    vit = vit[:, 1:, :]
    side = int(vit.shape[1] ** 0.5)
    vit = vit.reshape(vit.shape[0], side, side, -1)
    vit = pixel_shuffle(vit, scale_factor=cfg.downsample_ratio, ps_version=cfg.ps_version)
    vit = vit.reshape(vit.shape[0], -1, vit.shape[-1])
    return model.multi_modal_projector(vit)
