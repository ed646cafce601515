"""SaSaSa2VA on a whole video: ten clips for the language model, every frame decoded alone.

What ``SaSaSa2VAChatModel.predict_forward`` returns, for one query:

1. the mode picks 100 frames S (``modes``), cut into 10 clips; the language
   model sees each clip's key frame and a 3x3 grid of its other nine frames
   (``images``): 20 images, 5 120 image tokens, the question
   "<image>\\nPlease segment {query}.";
2. the answer's [SEG] tokens (hidden state at each [SEG]'s own position, then
   ``text_hidden_fcs``) give one prompt per clip: the first ten if there are
   more, the last repeated if fewer, an error if none;
3. every decoded position of the mode's plan is decoded alone by the
   checkpoint's single SAM2 decoder with object-score gating (``sam2_steps``);
   a frame decoded at several positions gets the mean of their logits at SAM2's
   input size; in the propagating plans (q_frame / wrap_around, T > 100) SAM2
   tracks from prompted frames 0..99 through the rest with the same decoder;
4. logits -> SAM2's input size -> the frame's size (both bilinear) -> > 0.

The SAM2 image encoder runs once per distinct frame; features are used and
dropped frame by frame, so memory does not grow with the video (except the
100 prompt memories of a propagating plan, as SAM2 itself keeps them).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from sa2va_i_ros.errors import Cancelled, FramesError, QueryError
from sa2va_i_ros.grounding.engine import GroundingEngine, GroundingOptions
from sa2va_i_ros.grounding.sasasa2va import language, modes, sam2_steps
from sa2va_i_ros.grounding.sasasa2va.sam2_steps import clip_prompts, decode_frame
from sa2va_i_ros.model.device import autocast
from sa2va_i_ros.model.generation import drain
from sa2va_i_ros.tracking.memory import ObjectMemory, memory_horizons
from sa2va_i_ros.tracking.sam2_runner import Sam2Runner

Progress = Callable[[str, float, str], None]


class NoSegmentationError(QueryError):
    """The answer holds no [SEG] token: SaSaSa2VA has no prompt for any clip (an IndexError officially)."""


@dataclass
class SaSaSa2VAResult:
    answer: str  # without the stop word
    raw_answer: str  # decoded generated tokens
    mode: str
    sampled_indices: list[int]  # S: the 100 frames the language model saw, in clip order
    num_seg: int  # [SEG] tokens in the answer (10 are used: first ten, or the last repeated)
    masks: list[np.ndarray]  # one bool (H, W) per frame
    scores: list[float]  # per frame: sigmoid of the object-score logit (mean over its positions)
    propagated: list[int]  # frames SAM2 reached by propagation (empty unless the plan propagates)
    seg_embeddings: torch.Tensor  # (num_seg, C) the answer's [SEG] states through text_hidden_fcs, cpu
    clip_prompts: torch.Tensor  # (10, C) the prompt of each clip, float32 on cpu
    token_ids: list[int] = field(default_factory=list)  # the generated ids, stop token included
    timings_ms: dict[str, float] = field(default_factory=dict)



class SaSaSa2VAPipeline:
    """Loads a SaSaSa2VA checkpoint and segments one query on a whole video (``run`` / ``segment``)."""

    modes = modes.MODES

    def __init__(self, engine: GroundingEngine):
        self.engine = engine
        self.model = engine.model

    @classmethod
    def load(cls, model: str, device: str = "cpu", dtype: str = "float32", revision: str | None = None,
             lm_devices=None) -> SaSaSa2VAPipeline:
        from sa2va_i_ros.grounding.sasasa2va.streaming import SaSaSa2VAEngine

        return cls(SaSaSa2VAEngine.load(model, device=device, dtype=dtype, revision=revision, lm_devices=lm_devices))

    # -- the language part ----------------------------------------------------------------------
    def language(self, frames: Sequence[np.ndarray], query: str, sampled: list[int], max_new_tokens: int,
                 cancelled: Callable[[], bool] | None = None) -> language.Answer:
        """The answer and its [SEG] states for the 20 clip images of ``sampled`` (``language.language_steps``)."""
        return drain(language.language_steps(self.engine, frames, query, sampled,
                                             GroundingOptions(max_new_tokens=max_new_tokens), cancelled))

    # -- the whole video ------------------------------------------------------------------------
    @torch.no_grad()
    def run(self, frames: Sequence[np.ndarray], query: str, *, mode: str = "uniform",
            q_frame: Sequence[int] | None = None, max_new_tokens: int = 2048,
            progress: Progress | None = None, cancelled: Callable[[], bool] | None = None) -> SaSaSa2VAResult:
        """Masks for every frame of ``frames`` (RGB uint8, in order) for ``query`` in ``mode``."""
        report = progress or (lambda stage, fraction, detail: None)
        engine = self.engine
        engine.check_query(query)
        language.check_query(query)
        engine.check_frames(frames)
        try:
            plan = modes.plan(len(frames), mode, None if q_frame is None else list(q_frame))
        except ValueError as exc:
            raise FramesError(str(exc)) from exc
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        report("language_model", 0.05, f"{mode}: 10 clips of 100 sampled frames out of {len(frames)}")
        said = self.language(frames, query, list(plan.sampled), max_new_tokens, cancelled)
        answer, raw, seg, token_ids = said.answer, said.raw_answer, said.seg, said.token_ids
        timings["language"] = (time.perf_counter() - t0) * 1e3
        if len(seg) == 0:
            raise NoSegmentationError(language.no_seg_reason(answer))
        _check(cancelled, "after generation")
        clips = clip_prompts(seg.to(engine.device))
        t1 = time.perf_counter()
        masks, scores, propagated = self._decode(frames, plan, clips, report, cancelled)
        timings["decode"] = (time.perf_counter() - t1) * 1e3
        timings["total"] = (time.perf_counter() - t0) * 1e3
        return SaSaSa2VAResult(answer, raw, mode, list(plan.sampled), len(seg), masks, scores, propagated,
                               seg.cpu(), clips.float().cpu(), token_ids, timings)

    def segment(self, frames, query, *, mode: str = "uniform", q_frame: Sequence[int] | None = None,
                **_sa2va_i_options) -> list[np.ndarray]:
        """The evaluation protocol: one bool mask per frame (Sa2VA-i's sampling options do not apply)."""
        return self.run(frames, query, mode=mode, q_frame=q_frame).masks

    # -- SAM2 -----------------------------------------------------------------------------------
    def _decode(self, frames, plan: modes.ModePlan, clips: torch.Tensor, report: Progress, cancelled):
        """Per frame: bool mask and presence score; the frames reached by propagation."""
        sam2 = self.model.sam2
        size = int(sam2.image_size)
        runner = Sam2Runner(sam2, self.engine.dtype, len(frames))
        by_frame: dict[int, list[int]] = {}
        for f, clip in plan.positions:
            by_frame.setdefault(f, []).append(clip)
        memory = ObjectMemory(*memory_horizons(sam2, len(frames))) if plan.propagate else None
        height, width = frames[0].shape[:2]
        masks: list[np.ndarray] = []
        scores: list[float] = []
        shared_pos = None
        for f in range(len(frames)):
            _check(cancelled, f"before frame {f}")
            report("decoding", 0.2 + 0.8 * f / len(frames), f"frame {f + 1} of {len(frames)}")
            feats = runner.features(runner.encode(runner.pixels(frames[f])))
            if f in by_frame:
                out, logits, score = decode_frame(sam2, feats, clips, by_frame[f], self.engine)
                if memory is not None:
                    with autocast(self.engine.device, self.engine.dtype):
                        features, pos = sam2_steps.prompt_memory(sam2, feats, out)
                    shared_pos = shared_pos or [x[0:1].clone() for x in pos]
                    memory.add_prompt(f, {"maskmem_features": features, "maskmem_pos_enc": shared_pos,
                                          "obj_ptr": out.obj_ptr, "object_score_logits": out.object_scores})
                scores.append(score)
            elif memory is not None:
                step = runner.track(feats, memory.output_dict, f)
                memory.add_tracked(f, step.entry)
                logits = sam2_steps.to_image_size(step.low_res_logits, size)
                scores.append(float(step.entry["object_score_logits"].float().sigmoid().mean()))
            else:  # plans cover every frame unless they propagate
                raise RuntimeError(f"mode {plan.mode}: frame {f} is neither decoded nor propagated")
            masks.append(sam2_steps.to_frame(logits, height, width)[0].cpu().numpy())
        propagated = [f for f in range(len(frames)) if f not in by_frame]
        return masks, scores, propagated



def _check(cancelled: Callable[[], bool] | None, where: str) -> None:
    if cancelled is not None and cancelled():
        raise Cancelled(f"cancelled {where}")
