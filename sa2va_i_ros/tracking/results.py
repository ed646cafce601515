"""What the tracker hands back: plain values a ROS layer can publish without touching torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

EventKind = Literal["lost", "found"]


@dataclass(frozen=True)
class TrackEvent:
    """A presence transition of one object, on the frame (stamp) where it happened."""

    obj_id: int
    kind: EventKind
    stamp: Any
    score: float


@dataclass(frozen=True, eq=False)
class ObjectResult:
    """One object on one frame.

    * ``mask``: bool (H, W) at the frame's original size, SAM2's own mask
      (low-res logits -> (S, S) -> (H, W), both bilinear, then sigmoid > 0.5, as
      Sa2VA does). It is empty whenever SAM2 predicts "no object".
    * ``score``: sigmoid(object_score_logits), this frame's presence probability.
    * ``visible``: the hysteresis state (see ``presence.PresenceMonitor``); it
      changes exactly on the frames that carry a ``lost``/``found`` event.
    * ``frame_index``: the object's own frame counter (frames it processed).
    * ``is_prompt``: a conditioning frame (the output is the prompt mask itself).
    * ``logits``: SAM2's low-res mask logits (1, 1, S/4, S/4), float32, on the
      model's device: diagnostics and exactness tests; not stored by the tracker.
    """

    obj_id: int
    mask: np.ndarray
    score: float
    visible: bool
    stamp: Any
    frame_index: int
    is_prompt: bool
    logits: torch.Tensor = field(repr=False)


@dataclass(frozen=True)
class FrameResult:
    """Every object processed on one frame, plus the presence events of that frame."""

    stamp: Any
    objects: dict[int, ObjectResult]
    events: tuple[TrackEvent, ...] = ()


@dataclass(frozen=True)
class AddResult:
    """Outcome of ``add_object``: the new id and its per-frame outputs, oldest first.

    ``frames`` covers the grounding window from the first prompted frame to the
    newest buffered frame, then the later frames it tracked (all of them with
    ``catch_up``, the newest one with ``skip``); ``skipped`` counts the later
    frames it did not track.
    """

    obj_id: int
    frames: list[FrameResult]
    skipped: int = 0


@dataclass(eq=False)
class PreparedObject:
    """A seeded object that catches up on its own and waits for ``StreamingTracker.join``.

    ``grounding`` is the checked grounding it was seeded from, ``position`` the
    last window index it processed (-1: none yet), ``later`` how many frames
    after the window it processed (``advance_object`` keeps both).
    """

    track: Any  # ObjectTrack
    frames: list[FrameResult]
    grounding: Any = None  # CheckedGrounding
    position: int = -1
    later: int = 0

    @property
    def obj_id(self) -> int:
        return self.track.obj_id


@dataclass(frozen=True)
class MemoryStats:
    """What one object holds, to check that memory stays bounded."""

    prompt_frames: int  # conditioning entries (kept for the object's lifetime)
    pending_prompt_outputs: int  # prompt masks not yet reached by the propagation
    recent_frames: int  # non-conditioning entries (object-pointer window)
    recent_memories: int  # of which still hold a spatial memory (last num_maskmem - 1)
    tensor_bytes: int  # bytes of all tensors the object holds
