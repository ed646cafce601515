"""The streaming tracker: offline SAM2 propagation, one frame at a time, for several objects."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from sa2va_i_ros.core.errors import Cancelled
from sa2va_i_ros.core.preprocess import check_frame
from sa2va_i_ros.core.tracker.config import TrackerConfig, check_gap_policy
from sa2va_i_ros.core.tracker.grounding import CheckedGrounding, Grounding, check_grounding
from sa2va_i_ros.core.tracker.masks import prompt_mask_input
from sa2va_i_ros.core.tracker.memory import ObjectMemory, memory_horizons
from sa2va_i_ros.core.tracker.object_track import ObjectTrack
from sa2va_i_ros.core.tracker.presence import PresenceMonitor
from sa2va_i_ros.core.tracker.results import (
    AddResult,
    FrameResult,
    MemoryStats,
    ObjectResult,
    PreparedObject,
    TrackEvent,
)
from sa2va_i_ros.core.tracker.sam2_runner import FrameFeatures, Sam2Runner


class StreamingTracker:
    """Tracks grounded objects on a live stream with sam2's original-decoder video model.

    Not thread-safe: the caller holds one lock around every call. Every public
    method validates its input before changing any state, so a ``ValueError``
    leaves all objects as they were.
    """

    def __init__(self, model, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self.runner = Sam2Runner(model, self.config.dtype, self.config.num_frames)
        self._horizons = memory_horizons(model, self.config.num_frames)
        self._objects: dict[int, ObjectTrack] = {}
        self._next_id = 1

    # -- queries ----------------------------------------------------------------------------
    @property
    def object_ids(self) -> list[int]:
        return list(self._objects)

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """(H, W) every tracked object expects from ``step``; None when nothing is tracked."""
        return next(iter(self._objects.values())).frame_size if self._objects else None

    def is_visible(self, obj_id: int) -> bool:
        return self._get(obj_id).presence.visible

    def memory_stats(self, obj_id: int) -> MemoryStats:
        shared = tuple(self.runner.maskmem_pos_enc or ())
        return self._get(obj_id).stats(shared)

    # -- changes ----------------------------------------------------------------------------
    def add_object(
        self,
        grounding: Grounding,
        *,
        obj_id: int | None = None,
        later: Sequence[tuple[np.ndarray, Any]] = (),
        gap_policy: str | None = None,
    ) -> AddResult:
        """Start tracking a grounded object; it catches up on its own, others are untouched.

        It propagates from the first prompted frame of ``grounding.frames`` to the
        newest one, then through ``later`` (frames that arrived after the window,
        oldest first, as ``(frame, stamp)``): all of them with ``catch_up``, only
        the newest with ``skip``. Afterwards ``step`` feeds it live frames.
        ``prepare_object`` + ``join`` do the same in two halves.
        """
        policy = check_gap_policy(gap_policy or self.config.gap_policy)
        obj_id = self._next_id if obj_id is None else obj_id
        self._check_new_id(obj_id)
        prepared = self.prepare_object(grounding, obj_id=obj_id, later=later if policy == "catch_up" else ())
        return self.join(prepared, later=() if policy == "catch_up" else later, gap_policy=policy)

    def prepare_object(self, grounding: Grounding, *, obj_id: int,
                       later: Sequence[tuple[np.ndarray, Any]] = (),
                       cancelled: Callable[[], bool] | None = None,
                       on_frame: Callable[[FrameResult], None] | None = None) -> PreparedObject:
        """Seed a new object and track it through its window and ``later``, outside the tracker.

        Nothing the tracked objects hold is read or changed, so a caller may run
        this without the lock that guards ``step`` (the catch-up through a long
        buffer then does not stall live tracking); ``join`` adds the object.
        ``cancelled`` is polled before every frame: when it returns True the
        preparation stops with ``Cancelled`` and nothing is kept. ``on_frame`` sees
        each output as it is made (progress bars).
        """
        if isinstance(obj_id, bool) or not isinstance(obj_id, int | np.integer):
            raise ValueError(f"obj_id must be an integer, got {obj_id!r}")
        g = check_grounding(grounding, self.runner.image_size, self.runner.feat_size,
                            self.config.prompt_policy, self.config.max_prompt_frames)
        later = [self._check_later(item, g.frame_size, k) for k, item in enumerate(later)]
        with torch.inference_mode():
            track = self._new_track(int(obj_id), g)
            frames = self._catch_up_window(track, g, cancelled, on_frame)
            for frame, stamp in later:
                _check(cancelled)
                frames.append(self._step_objects({track.obj_id: track}, frame, stamp))
                if on_frame is not None:
                    on_frame(frames[-1])
        return PreparedObject(track, frames)

    def join(self, prepared: PreparedObject, *, later: Sequence[tuple[np.ndarray, Any]] = (),
             gap_policy: str | None = None) -> AddResult:
        """Track a prepared object through ``later`` (by ``gap_policy``) and add it to the tracker."""
        policy = check_gap_policy(gap_policy or self.config.gap_policy)
        track = prepared.track
        self._check_new_id(track.obj_id)
        if self._objects and track.frame_size != self.frame_size:
            raise ValueError(f"grounding frames are {track.frame_size}, the tracked objects use {self.frame_size}")
        later = [self._check_later(item, track.frame_size, k) for k, item in enumerate(later)]
        todo = later if policy == "catch_up" else later[-1:]
        frames = list(prepared.frames)
        with torch.inference_mode():
            for frame, stamp in todo:
                frames.append(self._step_objects({track.obj_id: track}, frame, stamp))
        self._objects[track.obj_id] = track
        self._next_id = max(self._next_id, track.obj_id + 1)
        return AddResult(track.obj_id, frames, skipped=len(later) - len(todo))

    def step(self, frame: np.ndarray, stamp: Any) -> FrameResult:
        """Track every object on one new frame (the image encoder runs once for all)."""
        frame = check_frame(frame)
        wrong = [i for i, o in self._objects.items() if frame.shape[:2] != o.frame_size]
        if wrong:
            raise ValueError(f"frame is {frame.shape[:2]}, objects {wrong} were grounded on "
                             f"{self._objects[wrong[0]].frame_size} frames")
        with torch.inference_mode():
            return self._step_objects(self._objects, frame, stamp)

    def remove_object(self, obj_id: int) -> None:
        self._get(obj_id)
        del self._objects[obj_id]

    def clear(self) -> None:
        self._objects.clear()

    # -- internals --------------------------------------------------------------------------
    def _check_new_id(self, obj_id) -> None:
        if isinstance(obj_id, bool) or not isinstance(obj_id, int | np.integer):
            raise ValueError(f"obj_id must be an integer, got {obj_id!r}")
        if int(obj_id) in self._objects:
            raise ValueError(f"object id {obj_id} is already tracked")

    def _get(self, obj_id: int) -> ObjectTrack:
        try:
            return self._objects[obj_id]
        except (KeyError, TypeError):
            raise ValueError(f"unknown object id {obj_id!r}; tracked: {self.object_ids}") from None

    @staticmethod
    def _check_later(item, size: tuple[int, int], k: int) -> tuple[np.ndarray, Any]:
        try:
            frame, stamp = item
        except (TypeError, ValueError):
            raise ValueError(f"later[{k}] must be a (frame, stamp) pair") from None
        frame = check_frame(frame)
        if frame.shape[:2] != size:
            raise ValueError(f"later[{k}] is {frame.shape[:2]}, the grounding frames are {size}")
        return frame, stamp

    def _new_track(self, obj_id: int, g: CheckedGrounding) -> ObjectTrack:
        cfg = self.config
        track = ObjectTrack(
            obj_id, g.frame_size, ObjectMemory(*self._horizons),
            PresenceMonitor(obj_id, cfg.threshold, cfg.lost_after, cfg.found_after),
        )
        for idx, mask in g.prompts.items():
            mask_input = prompt_mask_input(mask, self.runner.image_size, self.runner.device)
            out = self.runner.prompt(self._window_features(g, idx), mask_input, idx)
            track.memory.add_prompt(idx, out.entry)
            track.pending_prompts[idx] = out.low_res_logits
        return track

    def _window_features(self, g: CheckedGrounding, idx: int) -> FrameFeatures:
        raw = g.raw_features.get(idx)
        if raw is None:
            pixels = g.pixels.get(idx)
            raw = self.runner.encode(pixels if pixels is not None else self.runner.pixels(g.frames[idx]))
        return self.runner.features(raw)

    def _catch_up_window(self, track: ObjectTrack, g: CheckedGrounding, cancelled: Callable[[], bool] | None = None,
                         on_frame: Callable[[FrameResult], None] | None = None) -> list[FrameResult]:
        results = []
        track.next_index = g.first_prompt
        for t in range(g.first_prompt, len(g.frames)):
            _check(cancelled)
            feats = self._window_features(g, t) if track.needs_features() else None
            adv = track.advance(self.runner, feats)
            result, event = track.commit(adv, g.stamps[t])
            results.append(FrameResult(g.stamps[t], {track.obj_id: result}, (event,) if event else ()))
            if on_frame is not None:
                on_frame(results[-1])
        return results

    def _step_objects(self, objects: dict[int, ObjectTrack], frame: np.ndarray, stamp: Any) -> FrameResult:
        if not objects:
            return FrameResult(stamp, {}, ())
        feats = None
        if any(o.needs_features() for o in objects.values()):
            feats = self.runner.features(self.runner.encode(self.runner.pixels(frame)))
        advances = {i: o.advance(self.runner, feats) for i, o in objects.items()}
        results: dict[int, ObjectResult] = {}
        events: list[TrackEvent] = []
        for i, adv in advances.items():
            results[i], event = objects[i].commit(adv, stamp)
            if event is not None:
                events.append(event)
        return FrameResult(stamp, results, tuple(events))


def _check(cancelled: Callable[[], bool] | None) -> None:
    if cancelled is not None and cancelled():
        raise Cancelled("cancelled while catching up")
