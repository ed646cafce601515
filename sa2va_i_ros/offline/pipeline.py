"""Sa2VA-i on a whole video, offline: what ``predict_forward`` returns, for every frame.

Frames are sampled over the whole video, the language model answers, every
sampled frame is decoded alone, and the original SAM2 propagates forward from
the first prompted frame through the last frame (the streaming tracker equals
sam2's offline propagation, see docs/TRACKER.md). Every ``[SEG]`` of the answer
gets its own masks, each propagated on its own (Sa2VA-i decodes and propagates
each [SEG] from a fresh SAM2 state); ``masks`` holds the first one's, the one
Sa2VA-i's evaluation scores (``prediction_masks[0]``). With no ``[SEG]`` every
mask is empty. Used by ``sa2va-i-video`` and ``sa2va-i-eval``; ``load_video_pipeline``
picks this pipeline or SaSaSa2VA's from the checkpoint's config.

The propagation model is the checkpoint's SAM2 (default) or the ``TrackerChoice``
given; the tracker is told the video's length, so that it equals sam2's offline
propagation for SAM 2.1 models on short videos too (docs/TRACKER.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from sa2va_i_ros.grounding.engine import GroundingEngine, GroundingOptions
from sa2va_i_ros.grounding.kinds import checkpoint_kind, checkpoint_tracker_only
from sa2va_i_ros.tracking import StreamingTracker, TrackerChoice, TrackerConfig, tracker_sam2


@dataclass
class VideoResult:
    answer: str
    sampled_indices: list[int]
    masks: list[np.ndarray]  # one bool (H, W) per frame, of the first [SEG] (the one evaluations score)
    scores: list[float]  # presence probability per frame (0 before the first prompted frame)
    reason: str = ""  # why there is no mask, if there is none
    timings_ms: dict[str, float] = field(default_factory=dict)
    seg_masks: list[list[np.ndarray]] = field(default_factory=list)  # per [SEG] of the answer: its masks
    seg_scores: list[list[float]] = field(default_factory=list)  # per [SEG]: its presence per frame


class VideoPipeline:
    def __init__(self, engine: GroundingEngine, tracker_config: TrackerConfig | None = None,
                 tracker: TrackerChoice | None = None):
        self.engine = engine
        self.tracker_config = tracker_config or TrackerConfig(dtype=engine.dtype)
        self.tracker_choice = tracker or TrackerChoice()
        self.tracker_sam2 = tracker_sam2(self.tracker_choice, engine.model.sam2, engine.device)

    @classmethod
    def load(cls, model: str, device: str = "cpu", dtype: str = "float32", original_sam2=None,
             tracker: TrackerChoice | None = None, **options) -> VideoPipeline:
        """``options``: GroundingEngine.load's (``revision``, ``lm_devices``)."""
        return cls(GroundingEngine.load(model, device=device, dtype=dtype, original_sam2=original_sam2, **options),
                   tracker=tracker)

    def run(self, frames: Sequence[np.ndarray], query: str, *, num_frames: int = 5, sampling: str = "uniform",
            prompt_frames: str = "all", progress: Callable[[int, int], None] | None = None,
            max_new_tokens: int = GroundingOptions.max_new_tokens) -> VideoResult:
        """Masks for every frame; ``progress(done, total)`` after each propagated frame."""
        t0 = time.perf_counter()
        g = self.engine.ground(frames, query, GroundingOptions(num_frames=num_frames, sampling=sampling,
                                                               max_new_tokens=max_new_tokens))
        timings = dict(g.timings_ms)
        height, width = g.frame_size
        empty = [np.zeros((height, width), bool) for _ in frames]
        if not g.has_mask:
            return VideoResult(g.answer, g.sampled_indices, empty, [0.0] * len(frames), g.reason, timings)
        t1 = time.perf_counter()
        n_seg = len(g.masks)
        tracker = StreamingTracker(self.tracker_sam2, replace(self.tracker_config, num_frames=len(frames)))
        seg_masks, seg_scores = [], []
        for k in range(n_seg):  # each [SEG] alone, as Sa2VA-i runs a new SAM2 state per [SEG]
            grounding = g.tracker_grounding(frames, range(len(frames)), prompt_frames, seg=k,
                                            tracker_sam2=self.tracker_sam2)
            todo = len(frames) - min(grounding.sampled_indices)
            done = [0]

            def tick(_result, k=k, todo=todo, done=done) -> None:
                done[0] += 1
                if progress is not None:
                    progress(k * todo + done[0], n_seg * todo)

            prepared = tracker.prepare_object(grounding, obj_id=k + 1, on_frame=tick)
            masks = [np.zeros((height, width), bool) for _ in frames]
            scores = [0.0] * len(frames)
            for result in prepared.frames:
                obj = result.objects[k + 1]
                masks[result.stamp], scores[result.stamp] = obj.mask, obj.score
            seg_masks.append(masks)
            seg_scores.append(scores)
        timings["propagate"] = (time.perf_counter() - t1) * 1e3
        timings["total"] = (time.perf_counter() - t0) * 1e3
        return VideoResult(g.answer, g.sampled_indices, seg_masks[0], seg_scores[0], "", timings,
                           seg_masks, seg_scores)

    def segment(self, frames, query, *, num_frames: int = 5, sampling: str = "uniform",
                prompt_frames: str = "all", mode: str | None = None, q_frame=None) -> list[np.ndarray]:
        """The evaluation protocol: one bool mask per frame (of the first [SEG])."""
        if mode is not None or q_frame is not None:
            raise ValueError("SaSaSa2VA modes (mode, q_frame) do not apply to a Sa2VA / Sa2VA-i checkpoint")
        return self.run(frames, query, num_frames=num_frames, sampling=sampling, prompt_frames=prompt_frames).masks


def load_video_pipeline(model: str, device: str = "cpu", dtype: str = "float32", original_sam2=None,
                        revision: str | None = None, lm_devices=None, tracker: TrackerChoice | None = None,
                        tracker_backend: tuple[str, str] = ("torch", "")):
    """The whole-video pipeline a checkpoint needs, by config.json's model_type.

    ``VideoPipeline`` (Sa2VA / Sa2VA-i) or ``SaSaSa2VAPipeline`` (``sasasa2va_chat``).
    Both answer ``segment(frames, query, **options)`` with one mask per frame.
    ``tracker`` (Sa2VA / Sa2VA-i only): the propagation model; ``tracker_backend``:
    (``TrackerConfig.backend``, ``onnx_dir``), the onnxruntime one in float32.
    """
    if checkpoint_kind(model, revision) == "sasasa2va":
        from sa2va_i_ros.grounding.sasasa2va.pipeline import SaSaSa2VAPipeline

        checkpoint_tracker_only(tracker)
        if tracker_backend[0] != "torch":
            raise ValueError("the onnxruntime tracker backend applies to Sa2VA / Sa2VA-i checkpoints only")
        return SaSaSa2VAPipeline.load(model, device=device, dtype=dtype, revision=revision, lm_devices=lm_devices)
    pipeline = VideoPipeline.load(model, device=device, dtype=dtype, original_sam2=original_sam2,
                                  revision=revision, lm_devices=lm_devices, tracker=tracker)
    backend, onnx_dir = tracker_backend
    if backend != "torch":
        pipeline.tracker_config = replace(pipeline.tracker_config, backend=backend, onnx_dir=onnx_dir,
                                          dtype=torch.float32)
    return pipeline
