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

import torch
import torch.nn.functional as F


def decode_language_prompt(sam2, decoder, backbone_out: dict, language: torch.Tensor):
    """Low-res mask logits (B, 1, h, w), IoU predictions (B, M) and object scores (B, 1).

    ``backbone_out``: image-encoder output for B frames already passed through
    ``decoder``'s high-resolution convolutions (``sam2_model.with_decoder_convs``).
    ``language``: (B, 1, C) language token per frame.
    """
    _, feats, _, sizes = sam2._prepare_backbone_features(backbone_out)
    high_res = [x.permute(1, 2, 0).view(x.size(1), x.size(2), *s) for x, s in zip(feats[:-1], sizes[:-1],
                                                                                   strict=True)]
    batch, channels = feats[-1].size(1), sam2.hidden_dim
    h, w = sizes[-1]
    image = (feats[-1] + sam2.no_mem_embed).permute(1, 2, 0).view(batch, channels, h, w)
    device = image.device
    coords = torch.zeros(batch, 1, 2, device=device)
    labels = -torch.ones(batch, 1, dtype=torch.int32, device=device)
    sparse, dense = sam2.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=None)
    sparse = torch.cat([sparse, language.to(sparse.dtype)], dim=1)
    multimask = sam2._use_multimask(is_init_cond_frame=True, point_inputs=None)
    low_res, ious, _tokens, object_scores = decoder(
        image_embeddings=image, image_pe=sam2.sam_prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=multimask,
        repeat_image=False, high_res_features=high_res)
    low_res = low_res.float()
    if multimask:
        best = torch.argmax(ious, dim=-1)
        low_res = low_res[torch.arange(batch, device=device), best].unsqueeze(1)
    return low_res, ious, object_scores


def logits_to_masks(low_res: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bool masks (B, H, W): bilinear (align_corners=False) to the frame size, sigmoid > 0.5."""
    up = F.interpolate(low_res.float(), size=(height, width), mode="bilinear", align_corners=False)
    return up[:, 0].sigmoid() > 0.5
