"""Sa2VA-i on a whole video, offline: what ``predict_forward`` returns, for every frame.

Frames are sampled over the whole video, the language model answers, every
sampled frame is decoded alone, and the original SAM2 propagates forward from
the first prompted frame through the last frame (the streaming tracker equals
sam2's offline propagation, see docs/TRACKER.md). Only the first ``[SEG]`` is
kept, as Sa2VA-i's evaluation does; with no ``[SEG]`` every mask is empty.
Used by ``sa2va-i-video`` and ``sa2va-i-eval``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .grounding import GroundingEngine, GroundingOptions
from .tracker import StreamingTracker, TrackerConfig


@dataclass
class VideoResult:
    answer: str
    sampled_indices: list[int]
    masks: list[np.ndarray]  # one bool (H, W) per frame
    scores: list[float]  # presence probability per frame (0 before the first prompted frame)
    reason: str = ""  # why there is no mask, if there is none
    timings_ms: dict[str, float] = field(default_factory=dict)


class VideoPipeline:
    def __init__(self, engine: GroundingEngine, tracker_config: TrackerConfig | None = None):
        self.engine = engine
        self.tracker_config = tracker_config or TrackerConfig(dtype=engine.dtype)

    @classmethod
    def load(cls, model: str, device: str = "cpu", dtype: str = "float32", original_sam2=None,
             **options) -> VideoPipeline:
        """``options``: GroundingEngine.load's (``revision``, ``lm_devices``)."""
        return cls(GroundingEngine.load(model, device=device, dtype=dtype, original_sam2=original_sam2, **options))

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
        grounding = g.tracker_grounding(frames, range(len(frames)), prompt_frames)
        t1 = time.perf_counter()
        done = [0]

        def tick(_result) -> None:
            done[0] += 1
            if progress is not None:
                progress(done[0], len(frames) - min(grounding.sampled_indices))

        tracker = StreamingTracker(self.engine.model.sam2, self.tracker_config)
        prepared = tracker.prepare_object(grounding, obj_id=1, on_frame=tick)
        masks, scores = empty, [0.0] * len(frames)
        for result in prepared.frames:
            obj = result.objects[1]
            masks[result.stamp], scores[result.stamp] = obj.mask, obj.score
        timings["propagate"] = (time.perf_counter() - t1) * 1e3
        timings["total"] = (time.perf_counter() - t0) * 1e3
        return VideoResult(g.answer, g.sampled_indices, masks, scores, "", timings)

    def segment(self, frames, query, *, num_frames: int = 5, sampling: str = "uniform",
                prompt_frames: str = "all") -> list[np.ndarray]:
        """The evaluation protocol: one bool mask per frame."""
        return self.run(frames, query, num_frames=num_frames, sampling=sampling, prompt_frames=prompt_frames).masks
