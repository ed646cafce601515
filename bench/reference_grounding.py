"""The official Sa2VA-i way of grounding, kept as a yardstick (never the product path).

Sa2VA-i's ``predict_forward`` calls transformers' ``generate`` with
``output_hidden_states=True`` (every layer of every step kept), picks the
last-layer state at each ``[SEG]``, and runs the SAM2 image encoder on the
sampled frames for grounding and again inside ``init_state``/propagation.
``make bench`` compares the engine's peak memory and time with this way of
working. It shares the product's prompt, preprocessing and decoder code, so it is
no oracle for exactness: the tests compare with the official code's own outputs
(test/fixtures/official_sa2va_i).
"""

from __future__ import annotations

import torch
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

from sa2va_i_ros.grounding.engine import GroundingOptions
from sa2va_i_ros.model import preprocess, prompt
from sa2va_i_ros.model.device import autocast
from sa2va_i_ros.model.sam2_model import encode_image, with_decoder_convs
from sa2va_i_ros.model.sampling import sample_indices, unique_in_order
from sa2va_i_ros.model.seg_decode import decode_language_prompt, logits_to_masks
from sa2va_i_ros.model.vision_features import image_embeddings


class _StopWord(StoppingCriteria):
    def __init__(self, stop):
        self.stop = stop

    def __call__(self, input_ids, scores, **kwargs):
        done = self.stop(input_ids[0].tolist())
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


@torch.no_grad()
def reference_ground(engine, frames, query: str, options: GroundingOptions | None = None) -> dict:
    """Tokens, [SEG] states, language embeddings and masks the official way."""
    opts = options or GroundingOptions()
    model, dev, dt = engine.model, engine.device, engine.dtype
    sampled = sample_indices(len(frames), opts.num_frames, opts.sampling)
    unique = unique_in_order(sampled)
    ids = engine.tokenizer.encode(prompt.build_prompt(query, len(unique), engine.cfg.template,
                                                      opts.question_mark_variant))
    pixels = torch.stack([preprocess.mllm_pixels(frames[i]) for i in unique]).to(dev, dt)
    vit = image_embeddings(model, pixels)
    input_ids = torch.tensor([ids], device=dev)
    embeds = model.language_model.get_input_embeddings()(input_ids).clone()
    embeds[0, input_ids[0] == engine.img_context_id] = vit.reshape(-1, vit.shape[-1]).to(embeds.dtype)
    tok = engine.tokenizer
    config = GenerationConfig(max_new_tokens=opts.max_new_tokens, do_sample=False, eos_token_id=tok.eos_token_id,
                              pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
                              output_hidden_states=True, return_dict_in_generate=True, use_cache=True)
    out = model.language_model.generate(
        inputs_embeds=embeds, attention_mask=torch.ones_like(input_ids, dtype=torch.bool),
        generation_config=config, stopping_criteria=StoppingCriteriaList([_StopWord(engine.stop)]))
    sequence = out.sequences[0]
    last = torch.cat([step[-1][0] for step in out.hidden_states], dim=0)
    generated = sequence[:-1]
    seg_states = last[-len(generated):][generated == engine.seg_id] if len(generated) else last[0:0]
    seg_embeddings = model.text_hidden_fcs(seg_states)

    sam_pixels = torch.stack([preprocess.sam2_pixels(frames[i], engine.cfg.sam2.image_size) for i in sampled])
    height, width = frames[0].shape[:2]
    masks = []
    with autocast(dev, dt):
        for emb in seg_embeddings:
            # the encoder on the sampled frames for grounding (Sa2VA-i's training-like call) ...
            backbone = with_decoder_convs(encode_image(model.sam2, sam_pixels.to(dev, dt)), model.finetuned_decoder)
            language = emb.reshape(1, 1, -1).expand(len(sampled), 1, -1)
            low_res, _, _ = decode_language_prompt(model.sam2, model.finetuned_decoder, backbone, language)
            masks.append(logits_to_masks(low_res, height, width))
            # ... and again in init_state / propagation for the same frames
            encode_image(model.sam2, sam_pixels.to(dev, dt))
    return {"sampled_indices": sampled, "tokens": sequence.tolist(), "seg_hidden": seg_states,
            "seg_embeddings": seg_embeddings, "masks": torch.stack(masks).cpu().numpy() if masks else None,
            "all_layer_states": out.hidden_states}
