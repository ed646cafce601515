"""Decode the [SEG] prompt on each sampled frame alone, with no memory.

Sa2VA-i's ``language_embd_inference`` with ``_forward_sam_heads(use_modified=True)``:
the frame's top-level features plus ``no_mem_embed`` (no memory attention), the
finetuned decoder's own ``conv_s0``/``conv_s1`` high-resolution features, sparse
prompt = two padding points (label -1, i.e. ``not_a_point_embed`` twice) followed
by the 256-d language token, dense prompt = ``no_mask_embed``, multimask output
with the best predicted IoU kept, no no-object suppression (commented out in
Sa2VA). The low-resolution logits are resized bilinearly to the frame's size
and thresholded with ``sigmoid() > 0.5``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LanguageDecode:
    """One decoder pass on B frames: the best of the multimask outputs, as ``_forward_sam_heads`` picks it."""

    low_res: torch.Tensor  # (B, 1, h, w) float32 mask logits of the best predicted IoU
    ious: torch.Tensor  # (B, M) predicted IoUs
    object_scores: torch.Tensor  # (B, 1) object-score logits
    token: torch.Tensor  # (B, C) SAM output token of the kept mask (what the object pointer is made from)


def decode_language(sam2, decoder, vision_feats: list[torch.Tensor], feat_sizes: list[tuple[int, int]],
                    language: torch.Tensor) -> LanguageDecode:
    """The language-prompted decoder call on flattened features (``_prepare_backbone_features`` output).

    ``vision_feats``: per level (HW, B, C), already through ``decoder``'s
    high-resolution convolutions; ``language``: (B, 1, C) language token per frame.
    """
    high_res = [x.permute(1, 2, 0).view(x.size(1), x.size(2), *s) for x, s in zip(vision_feats[:-1],
                                                                                   feat_sizes[:-1], strict=True)]
    batch, channels = vision_feats[-1].size(1), sam2.hidden_dim
    h, w = feat_sizes[-1]
    image = (vision_feats[-1] + sam2.no_mem_embed).permute(1, 2, 0).view(batch, channels, h, w)
    device = image.device
    coords = torch.zeros(batch, 1, 2, device=device)
    labels = -torch.ones(batch, 1, dtype=torch.int32, device=device)
    sparse, dense = sam2.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=None)
    sparse = torch.cat([sparse, language.to(sparse.dtype)], dim=1)
    multimask = sam2._use_multimask(is_init_cond_frame=True, point_inputs=None)
    low_res, ious, tokens, object_scores = decoder(
        image_embeddings=image, image_pe=sam2.sam_prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=multimask,
        repeat_image=False, high_res_features=high_res)
    low_res, token = low_res.float(), tokens[:, 0]
    if multimask:
        best = torch.argmax(ious, dim=-1)
        rows = torch.arange(batch, device=device)
        low_res = low_res[rows, best].unsqueeze(1)
        if tokens.size(1) > 1:
            token = tokens[rows, best]
    return LanguageDecode(low_res, ious, object_scores, token)


def decode_language_prompt(sam2, decoder, backbone_out: dict, language: torch.Tensor):
    """Low-res mask logits (B, 1, h, w), IoU predictions (B, M) and object scores (B, 1).

    ``backbone_out``: image-encoder output for B frames already passed through
    ``decoder``'s high-resolution convolutions (``sam2_model.with_decoder_convs``).
    ``language``: (B, 1, C) language token per frame.
    """
    _, feats, _, sizes = sam2._prepare_backbone_features(backbone_out)
    out = decode_language(sam2, decoder, feats, sizes, language)
    return out.low_res, out.ious, out.object_scores


def logits_to_masks(low_res: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bool masks (B, H, W): bilinear (align_corners=False) to the frame size, sigmoid > 0.5."""
    up = F.interpolate(low_res.float(), size=(height, width), mode="bilinear", align_corners=False)
    return up[:, 0].sigmoid() > 0.5
