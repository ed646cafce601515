"""Tiny versions of sam2's released models for the tracker tests, and sam2's own offline reference of each.

No tests here. For every config a tiny random-weight file is written in sam2's
official layout, with the gains the tracker tests use (so that videos get "no
object" frames and SAM 2.1's additions move the logits visibly). The tracker
loads it through the product path (``TrackerChoice`` -> ``load_tracker_model``);
the reference is built from the same file by sam2's own
``build_sam2_video_predictor`` (its own config composition and strict
``torch.load`` loading), with Sa2VA's decoder overrides and the tiny sizes.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from test_tracker_helpers import PRESENCE_GAIN, TPOS_GAIN, blob_mask, make_frames, object_results, tiny_model

from sa2va_i_ros.testing.tiny_trackers import build_tiny_tracker, tiny_tracker_spec
from sa2va_i_ros.tracking import Grounding, StreamingTracker
from sa2va_i_ros.tracking.models import TRACKER_MODELS, TrackerChoice, load_tracker_model, save_weights

SAM2_NAMES = tuple(TRACKER_MODELS)  # sam2.1_hiera_t ... sam2_hiera_l
ALL_TRACKERS = ("checkpoint", *SAM2_NAMES)
# Random weights give a no-object embedding of std 0.02 whose effect hides in float noise; scaled up,
# a memory encoded without it (or with it where it does not belong) changes the logits visibly.
NO_OBJ_GAIN = 50.0
# Sa2VA's decoder overrides, as sam2's build_sam2_video_predictor spells its own (without its
# binarize and hole-filling post-processing, which Sa2VA does not use).
SA2VA_DECODER = (
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
)

# Random-weight seeds whose decoders draw non-empty masks on the test videos (with random weights
# some draw none at all): the tests assert both empty and non-empty frames (assert_mixed).
SEEDS = {"sam2.1_hiera_t": 1, "sam2.1_hiera_s": 2, "sam2.1_hiera_b+": 1, "sam2.1_hiera_l": 1,
         "sam2_hiera_t": 2, "sam2_hiera_s": 3, "sam2_hiera_b+": 3, "sam2_hiera_l": 1}

_FOLDER = Path(tempfile.mkdtemp(prefix="tiny_trackers_"))
atexit.register(shutil.rmtree, _FOLDER, ignore_errors=True)


def designed(model):
    """The test gains, in place (see test_tracker_helpers and NO_OBJ_GAIN).

    The presence score's bias is then set on calibration videos like the tests'
    so that the score of their flash frames (every fifth frame, far brighter) and
    that of the other frames fall on either side of 0.5: every model, whatever its
    random weights, sees "object" and "no object" frames on the test videos.
    """
    with torch.no_grad():
        last = model.sam_mask_decoder.pred_obj_score_head.layers[-1]
        last.weight.mul_(PRESENCE_GAIN)
        last.bias.mul_(PRESENCE_GAIN)
        if model.proj_tpos_enc_in_obj_ptrs:
            model.obj_ptr_tpos_proj.weight.mul_(TPOS_GAIN)
        if model.no_obj_embed_spatial is not None:
            model.no_obj_embed_spatial.mul_(NO_OBJ_GAIN)
        flash, plain = [], []
        for prompts in ([1], [3, 9]):  # calibration videos like the tests'
            frames = make_frames(24)
            tracker = StreamingTracker(model)
            masks = [blob_mask(i) for i in prompts]
            added = tracker.add_object(Grounding(frames[:10], list(range(10)), prompts, masks))
            results = object_results(added.frames, added.obj_id)
            results += [tracker.step(f, k).objects[added.obj_id] for k, f in enumerate(frames[10:])]
            for r in results:
                if not r.is_prompt:
                    logit = torch.logit(torch.tensor(r.score, dtype=torch.float64), eps=1e-12).item()
                    (flash if r.frame_index % 5 == 3 else plain).append(logit)
        last.bias.sub_((float(np.median(flash)) + float(np.median(plain))) / 2)
    return model


@functools.cache
def tiny_weights(name: str, suffix: str = ".pt") -> Path:
    """A tiny designed weights file of ``name`` (sam2's official .pt layout, or .safetensors)."""
    model, spec = build_tiny_tracker(name, seed=SEEDS[name])
    return save_weights(designed(model), _FOLDER / f"{name}{suffix}", spec)


@functools.cache
def product_model(name: str):
    """The tracker's model: the checkpoint's tiny SAM2, or ``name`` loaded by the product path."""
    if name == "checkpoint":
        return tiny_model()
    return load_tracker_model(TrackerChoice(name, str(tiny_weights(name))))


@functools.cache
def reference_model(name: str):
    """sam2's own video predictor for ``name``, built and loaded by sam2 from the same file."""
    if name == "checkpoint":
        return tiny_model()
    from sam2.build_sam import build_sam2_video_predictor

    overrides = [*SA2VA_DECODER, *tiny_tracker_spec(name).hydra_overrides(always=True)]
    return build_sam2_video_predictor(TRACKER_MODELS[name].config, ckpt_path=str(tiny_weights(name)),
                                      device="cpu", apply_postprocessing=False, hydra_overrides_extra=overrides)
