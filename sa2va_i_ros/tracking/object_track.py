"""One tracked object: its memory bank, its own frame counter and its presence state.

A frame is processed in two halves so that a failure leaves the object as it
was: ``advance`` runs sam2 and builds the result without changing anything,
``commit`` stores it (dict updates only, which cannot fail half-way).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from sa2va_i_ros.tracking.masks import frame_mask
from sa2va_i_ros.tracking.memory import ObjectMemory
from sa2va_i_ros.tracking.presence import PresenceMonitor
from sa2va_i_ros.tracking.results import MemoryStats, ObjectResult, TrackEvent
from sa2va_i_ros.tracking.sam2_runner import FrameFeatures, Sam2Runner, StepOutput


@dataclass(frozen=True)
class Advance:
    """A processed but not yet stored frame of one object."""

    frame_idx: int
    step: StepOutput | None  # None on a conditioning frame (its entry is already stored)
    low_res_logits: torch.Tensor
    score: float
    mask: Any


class ObjectTrack:
    """State of one object. Frame indices are its own: the grounding window is 0..N-1,
    then each frame the object processes gets the next index, so frames it never
    saw (skipped while the language model ran) leave no gap in its memory."""

    def __init__(self, obj_id: int, frame_size: tuple[int, int], memory: ObjectMemory,
                 presence: PresenceMonitor) -> None:
        self.obj_id = obj_id
        self.frame_size = tuple(frame_size)
        self.memory = memory
        self.presence = presence
        self.next_index = 0
        # Low-res outputs of conditioning frames the propagation has not reached yet.
        self.pending_prompts: dict[int, torch.Tensor] = {}

    def move_prompt(self, old: int, new: int) -> None:
        """Renumber a prompt frame not reached yet (frames before it were skipped).

        sam2 reads a conditioning frame's index only once it is at or before the
        current frame (object pointers of past prompts, their temporal encoding);
        its spatial memory is attended with position 0 wherever it lies. So a
        prompt ahead may take the index it will really be processed at, and the
        result equals offline propagation over the frames actually processed.
        Insertion order (sam2's concatenation order) is kept.
        """
        if old == new:
            return
        if new in self.memory.cond or old not in self.pending_prompts:
            raise ValueError(f"object {self.obj_id}: cannot move prompt {old} to {new}")
        items = [(new if k == old else k, v) for k, v in self.memory.cond.items()]
        self.memory.cond.clear()  # the same dict: output_dict refers to it
        self.memory.cond.update(items)
        self.pending_prompts[new] = self.pending_prompts.pop(old)

    def needs_features(self) -> bool:
        return self.next_index not in self.pending_prompts

    def job(self) -> tuple[dict, int] | None:
        """(memory, frame index) to track the next frame with; None when that frame is a prompt."""
        t = self.next_index
        return None if t in self.pending_prompts else (self.memory.output_dict, t)

    def advance(self, runner: Sam2Runner, feats: FrameFeatures | None = None,
                step: StepOutput | None = None) -> Advance:
        """The next frame, not stored yet: its prompt, or ``step`` (tracked already, e.g. in a
        batch of objects), or tracked here on ``feats``."""
        t = self.next_index
        if t in self.pending_prompts:
            step = None
            logits = self.pending_prompts[t]
            score_logit = self.memory.cond[t]["object_score_logits"]
        else:
            if step is None:
                if feats is None:
                    raise RuntimeError(f"object {self.obj_id}: frame {t} needs image features")
                step = runner.track(feats, self.memory.output_dict, t)
            logits = step.low_res_logits
            score_logit = step.entry["object_score_logits"]
        score = float(torch.sigmoid(score_logit.float()).reshape(-1)[0])
        mask = frame_mask(logits, runner.image_size, self.frame_size)
        return Advance(t, step, logits, score, mask)

    def commit(self, adv: Advance, stamp: Any) -> tuple[ObjectResult, TrackEvent | None]:
        if adv.step is None:
            del self.pending_prompts[adv.frame_idx]
        else:
            self.memory.add_tracked(adv.frame_idx, adv.step.entry)
        self.next_index = adv.frame_idx + 1
        event = self.presence.update(adv.score, stamp)
        result = ObjectResult(
            obj_id=self.obj_id, mask=adv.mask, score=adv.score, visible=self.presence.visible, stamp=stamp,
            frame_index=adv.frame_idx, is_prompt=adv.step is None, logits=adv.low_res_logits,
        )
        return result, event

    def stats(self, shared: tuple[torch.Tensor, ...]) -> MemoryStats:
        pending = sum(t.numel() * t.element_size() for t in self.pending_prompts.values())
        return MemoryStats(
            prompt_frames=len(self.memory.cond),
            pending_prompt_outputs=len(self.pending_prompts),
            recent_frames=len(self.memory.recent),
            recent_memories=self.memory.spatial_count(),
            tensor_bytes=self.memory.tensor_bytes(shared) + pending,
        )
