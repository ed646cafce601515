"""SaSaSa2VA in the node: its grounding on the buffered window, in bounded steps, seeding the streaming tracker.

``SaSaSa2VAEngine`` is the grounding engine the node's session uses for a
SaSaSa2VA checkpoint. Its ``ground_steps`` does, on the T window frames, what
``SaSaSa2VAPipeline.run`` does, but decodes only the frames the tracker is
seeded from:

1. the mode's plan on the window (``sasasa2va_mode``; q_frame is not offered:
   its 100 indices are chosen beforehand for a known video);
2. the 20 clip images, the vision tower and greedy generation, in steps
   (``language.language_steps``);
3. the ten clip prompts from the answer's [SEG] (the first ten, or the last
   repeated; none: no mask, and the reason says so);
4. the seed frames (``modes.seed_frames``: the last clip's sampled frames
   S[90..99] and the newest window frame, where the plan decodes them; at most
   eleven) through SAM2's image encoder and the checkpoint's single decoder,
   each at all its plan positions (mean of logits where several): on these
   frames the masks are the whole-video pipeline's.

The result seeds ONE track (SaSaSa2VA's [SEG] tokens are its ten clips, not
objects) with the seed masks as mask prompts, as Sa2VA-i tracks are seeded;
the streaming tracker (SAM2 with that same single decoder, as original Sa2VA
tracks) carries it through the rest of the window and the live stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from sa2va_i_ros.errors import FramesError, UnsupportedModelError
from sa2va_i_ros.grounding.engine import GroundingEngine, GroundingOptions, GroundingResult, load_parts
from sa2va_i_ros.grounding.sasasa2va import language, modes, sam2_steps
from sa2va_i_ros.grounding.sasasa2va.model import SaSaSa2VAModel, sasasa2va_only
from sa2va_i_ros.grounding.sasasa2va.sam2_steps import clip_prompts, decode_frame
from sa2va_i_ros.model.sam2_model import with_decoder_convs
from sa2va_i_ros.tracking.sam2_runner import Sam2Runner

Progress = Callable[[str, float, str], None]


@dataclass
class SaSaSa2VAGrounding(GroundingResult):
    """A SaSaSa2VA grounding on a window: ``sampled_indices`` is S (what the language model saw);
    ``masks`` (1, len(seeds), H, W) are on the ``seeds``, the frames the tracker is seeded from."""

    mode: str = "uniform"
    seeds: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)  # presence score of each seed frame

    @property
    def num_objects(self) -> int:
        return 1 if self.has_mask else 0

    def tracker_grounding(self, frames, stamps, prompt_frames: str = "all", seg: int = 0, tracker_sam2=None):
        """The tracker's input: the window, the seed masks ("first": the oldest seed only); ``tracker_sam2``
        as in ``GroundingResult.tracker_grounding``."""
        from sa2va_i_ros.tracking import Grounding

        if prompt_frames not in ("all", "first"):
            raise ValueError(f"prompt_frames must be 'all' or 'first', got {prompt_frames!r}")
        if not self.has_mask:
            raise ValueError(f"no mask to prompt with: {self.reason}")
        if seg != 0:
            raise ValueError("a SaSaSa2VA answer is one object (its [SEG] tokens are clips)")
        seeds = self.seeds[:1] if prompt_frames == "first" else self.seeds
        features, pixels = self.reusable([self.sam2_features[i] for i in seeds],
                                         [self.sam2_pixels[i] for i in seeds], tracker_sam2)
        return Grounding(frames=list(frames), stamps=list(stamps), sampled_indices=list(seeds),
                         masks=list(self.masks[0][: len(seeds)]), raw_features=features, pixels=pixels)

    def prompts(self, seg: int = 0) -> dict[int, np.ndarray]:
        if not self.has_mask:
            raise ValueError(f"no mask to prompt with: {self.reason}")
        return {f: self.masks[0, k] for k, f in enumerate(self.seeds)}


class SaSaSa2VAEngine(GroundingEngine):
    """A SaSaSa2VA checkpoint as the node's grounding engine."""

    kind = "sasasa2va"

    @classmethod
    def load(cls, model: str, device: str = "cpu", dtype: str = "float32", original_sam2=None,
             revision: str | None = None, lm_devices=None) -> SaSaSa2VAEngine:
        """Tokenizer, language model and SAM2 of a SaSaSa2VA checkpoint (directory or hub id): its language part
        (vision tower, generation, [SEG] states) is Sa2VA's, ``ground_steps`` SaSaSa2VA's on a window (the node);
        ``SaSaSa2VAPipeline`` runs a whole video with it."""
        if original_sam2:
            raise UnsupportedModelError(f"{model}: a SaSaSa2VA checkpoint has one SAM2 decoder that both prompts "
                                        "and tracks; original_sam2 does not apply to it")
        return cls(*load_parts(model, device, dtype, revision, lm_devices, sasasa2va_only,
                               model_class=SaSaSa2VAModel, single_decoder=True))

    def check_query(self, query: str) -> None:
        super().check_query(query)
        language.check_query(query)

    @torch.no_grad()
    def ground_steps(self, frames: Sequence[np.ndarray], query: str, options: GroundingOptions | None = None,
                     progress: Progress | None = None, cancelled: Callable[[], bool] | None = None
                     ) -> Generator[str, None, SaSaSa2VAGrounding]:
        """``ground`` as a generator: a stage name after each bounded step; the result at the end.

        Bad input raises (``QueryError``, ``FramesError``) at the first ``next``.
        """
        opts = options or GroundingOptions()
        report = progress or (lambda stage, fraction, detail: None)
        self.check_query(query)
        height, width = self.check_frames(frames)
        mode = opts.sasasa2va_mode
        if mode not in modes.STREAMING_MODES:
            raise FramesError(f"SaSaSa2VA mode {mode!r} is not available on a frame stream; use one of "
                              f"{', '.join(modes.STREAMING_MODES)} (q_frame needs indices chosen for a known video)")
        plan = modes.plan(len(frames), mode)
        seeds = modes.seed_frames(plan)
        timings: dict[str, float] = {}
        report("sampling", 0.05, f"{mode}: 10 clips of 100 sampled frames out of {len(frames)}")
        report("language_model", 0.15, "20 clip images, vision tower and greedy generation")
        answer = yield from language.language_steps(self, frames, query, list(plan.sampled), opts, cancelled, timings)
        result = SaSaSa2VAGrounding(list(plan.sampled), answer.answer, answer.raw_answer, answer.seg.cpu(), None, "",
                                    (height, width), timings_ms=timings, token_ids=answer.token_ids, mode=mode)
        if len(answer.seg) == 0:
            result.reason = language.no_seg_reason(answer.answer)
            timings["total"] = sum(timings.values())
            return result
        if cancelled is not None and cancelled():
            from sa2va_i_ros.errors import Cancelled

            raise Cancelled("cancelled after generation")
        clips = clip_prompts(answer.seg.to(self.device))
        sam2 = self.model.sam2
        runner = Sam2Runner(sam2, self.dtype, len(frames))
        by_frame: dict[int, list[int]] = {}
        for f, clip in plan.positions:
            by_frame.setdefault(f, []).append(clip)
        masks, scores = [], []
        for k, f in enumerate(seeds):
            report("decoding", 0.6 + 0.3 * k / len(seeds), f"seed frame {k + 1} of {len(seeds)}")
            t0 = time.perf_counter()
            pixels = runner.pixels(frames[f])
            raw = runner.encode(pixels)  # as the whole-video pipeline encodes its frames
            with runner.autocast():
                tracking = {**with_decoder_convs(raw, sam2.sam_mask_decoder), "convs": "original"}
            del raw
            result.sam2_pixels[f], result.sam2_features[f] = pixels, tracking
            timings["decode"] = timings.get("decode", 0.0) + (time.perf_counter() - t0) * 1e3
            yield "sam2_encoder"
            t0 = time.perf_counter()
            _, logits, score = decode_frame(sam2, runner.features(tracking), clips, by_frame[f], self)
            masks.append(sam2_steps.to_frame(logits, height, width)[0].cpu().numpy())
            scores.append(score)
            timings["decode"] += (time.perf_counter() - t0) * 1e3
            yield "seg_decode"
        result.masks, result.seeds, result.scores = np.stack(masks)[None], seeds, scores
        timings["total"] = sum(timings.values())
        return result
