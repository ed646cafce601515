"""The streaming tracker: offline SAM2 propagation, one frame at a time, for several objects."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from sa2va_i_ros.errors import Cancelled, ObjectFault
from sa2va_i_ros.model.generation import drain
from sa2va_i_ros.model.preprocess import check_frame
from sa2va_i_ros.tracking.config import TrackerConfig, check_gap_policy
from sa2va_i_ros.tracking.fast import FastPaths, resolve_fast_paths
from sa2va_i_ros.tracking.grounding import CheckedGrounding, Grounding, check_grounding
from sa2va_i_ros.tracking.masks import prompt_mask_input
from sa2va_i_ros.tracking.memory import ObjectMemory, memory_horizons
from sa2va_i_ros.tracking.object_track import ObjectTrack
from sa2va_i_ros.tracking.presence import PresenceMonitor
from sa2va_i_ros.tracking.results import AddResult, FrameResult, MemoryStats, ObjectResult, PreparedObject, TrackEvent
from sa2va_i_ros.tracking.sam2_runner import FrameFeatures, Sam2Runner


class StreamingTracker:
    """Tracks grounded objects on a live stream with sam2's original-decoder video model.

    Not thread-safe: the caller holds one lock around every call. Every public
    method validates its input before changing any state, so a ``ValueError``
    leaves all objects as they were.
    """

    def __init__(self, model, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        fast = resolve_fast_paths(self.config.compile, self.config.channels_last, model.device)
        calls = None
        if self.config.backend == "onnxruntime":
            from sa2va_i_ros.tracking.onnx import onnx_calls

            calls = onnx_calls(model, self.config.onnx_dir)
        self.runner = Sam2Runner(model, self.config.dtype, self.config.num_frames, fast, calls,
                                 self.config.preprocess)
        self._horizons = memory_horizons(model, self.config.num_frames)
        self._objects: dict[int, ObjectTrack] = {}
        self._next_id = 1

    def sibling(self) -> StreamingTracker:
        """A tracker with no objects on this one's model, runner and compiled paths: another camera's state,
        the weights held once (the runner keeps no per-object state; one thread calls both)."""
        twin = copy.copy(self)
        twin._objects, twin._next_id = {}, 1
        return twin

    # -- queries ----------------------------------------------------------------------------
    @property
    def sam2(self):
        """The SAM2 model this tracker propagates with."""
        return self.runner.model

    @property
    def fast_paths(self) -> FastPaths:
        """The speed paths in use on this device (``notes``: what was asked but is off here)."""
        return self.runner.fast

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
        this between ``step`` calls (the catch-up through a long buffer then does
        not stall live tracking); ``join`` adds the object. ``cancelled`` is
        polled before every frame: when it returns True the preparation stops
        with ``Cancelled`` and nothing is kept. ``on_frame`` sees each output as
        it is made (progress bars). ``seed_object`` + ``advance_object`` do the
        same one frame at a time.
        """
        prepared = self.seed_object(grounding, obj_id=obj_id)
        later = [self._check_later(item, prepared.grounding.frame_size, k) for k, item in enumerate(later)]
        steps = [(t, None, None) for t in range(prepared.grounding.first_prompt, len(prepared.grounding.frames))]
        for t, frame, stamp in [*steps, *((None, f, s) for f, s in later)]:
            _check(cancelled)
            result = self.advance_object(prepared, window_index=t, frame=frame, stamp=stamp)
            if on_frame is not None:
                on_frame(result)
        return prepared

    def seed_object(self, grounding: Grounding, *, obj_id: int) -> PreparedObject:
        """Validate ``grounding`` and seed a new object with its prompts; no frame is processed yet.

        ``advance_object`` then feeds it frames one at a time and ``join`` adds it:
        a caller can interleave that work with ``step`` of the tracked objects,
        which this object does not touch. ``seed_steps`` does the same one prompt at a time.
        """
        return drain(self.seed_steps(grounding, obj_id=obj_id))

    def seed_steps(self, grounding: Grounding, *, obj_id: int) -> Iterator[int]:
        """``seed_object`` one model call per ``next`` (``seed_in_steps``); returns the ``PreparedObject``."""
        return seed_in_steps(self, grounding, obj_id)

    def advance_object(self, prepared: PreparedObject, *, window_index: int | None = None,
                       frame: np.ndarray | None = None, stamp: Any = None) -> FrameResult:
        """Process one more frame of a prepared object: window frame ``window_index``, or a later ``frame``.

        Window frames go in increasing order from the first prompted one; frames
        that are not prompted may be skipped (the object numbers the frames it
        processes consecutively, and prompts ahead take the index they are
        reached at: the outputs equal offline propagation over the frames
        processed). Later frames (``frame``, ``stamp``) follow once every prompt
        was reached. The output is also appended to ``prepared.frames``.
        """
        g, track = prepared.grounding, prepared.track
        if g is None:
            raise ValueError("advance_object needs an object from seed_object or prepare_object")
        if window_index is not None:
            t = window_index
            if isinstance(t, bool) or not isinstance(t, int | np.integer) or not 0 <= t < len(g.frames):
                raise ValueError(f"window_index {t!r} is not an index into the {len(g.frames)} window frames")
            if prepared.later or t <= prepared.position:
                raise ValueError(f"window frame {t} comes after a frame this object already processed")
            if prepared.position < 0 and t != g.first_prompt:
                raise ValueError(f"the first frame must be the first prompted one ({g.first_prompt}), got {t}")
            skipped = [i for i in g.prompts if prepared.position < i < t]
            if skipped:
                raise ValueError(f"prompted window frames {skipped} cannot be skipped")
            with torch.inference_mode():
                if t in g.prompts:
                    track.move_prompt(t, track.next_index)
                feats = self._window_features(g, t) if track.needs_features() else None
                adv = track.advance(self.runner, feats)
                result, event = track.commit(adv, g.stamps[t])
            prepared.position = int(t)
            out = FrameResult(g.stamps[t], {track.obj_id: result}, (event,) if event else ())
        else:
            if track.pending_prompts:
                raise ValueError(f"later frames come after the prompted window frames "
                                 f"{sorted(g.prompts)}; processed up to {prepared.position}")
            frame, _ = self._check_later((frame, stamp), g.frame_size, prepared.later)
            with torch.inference_mode():
                out = self._step_objects({track.obj_id: track}, frame, stamp)
            prepared.later += 1
        prepared.frames.append(out)
        return out

    def advance_objects(self, prepared: Sequence[PreparedObject], **frame) -> list[FrameResult]:
        """``advance_object`` for several objects on the same frame, with one encoder pass (``advance_together``)."""
        return advance_together(self, list(prepared), **frame)

    def set_presence(self, threshold: float, lost_after: int, found_after: int,
                     also: Sequence[PreparedObject] = ()) -> None:
        """New presence hysteresis for every tracked object (and ``also``), from their next frame on."""
        self.config = replace(self.config, threshold=threshold, lost_after=lost_after, found_after=found_after)
        for track in [*self._objects.values(), *(p.track for p in also)]:
            track.presence.configure(threshold, lost_after, found_after)

    def join(self, prepared: PreparedObject, *, later: Sequence[tuple[np.ndarray, Any]] = (),
             gap_policy: str | None = None) -> AddResult:
        """Track a prepared object through ``later`` (by ``gap_policy``) and add it to the tracker."""
        policy = check_gap_policy(gap_policy or self.config.gap_policy)
        track = prepared.track
        self._check_new_id(track.obj_id)
        if track.pending_prompts:
            raise ValueError(f"object {track.obj_id} has not reached its prompted window frames "
                             f"{sorted(prepared.grounding.prompts)} yet")
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

    def _new_track(self, obj_id: int, g: CheckedGrounding, prompts: bool = True) -> ObjectTrack:
        cfg = self.config
        track = ObjectTrack(
            obj_id, g.frame_size, ObjectMemory(*self._horizons),
            PresenceMonitor(obj_id, cfg.threshold, cfg.lost_after, cfg.found_after),
        )
        for idx, mask in g.prompts.items() if prompts else ():
            self._prompt(track, idx, mask, self._window_features(g, idx))
        return track

    def _prompt(self, track: ObjectTrack, idx: int, mask, feats: FrameFeatures) -> None:
        mask_input = prompt_mask_input(mask, self.runner.image_size, self.runner.device)
        out = self.runner.prompt(feats, mask_input, idx)
        track.memory.add_prompt(idx, out.entry)
        track.pending_prompts[idx] = out.low_res_logits

    def _window_features(self, g: CheckedGrounding, idx: int) -> FrameFeatures:
        raw = g.raw_features.get(idx)
        if raw is None:
            pixels = g.pixels.get(idx)
            raw = self.runner.encode(pixels if pixels is not None else self.runner.pixels(g.frames[idx]))
        return self.runner.features(raw)

    def _step_objects(self, objects: dict[int, ObjectTrack], frame: np.ndarray, stamp: Any) -> FrameResult:
        if not objects:
            return FrameResult(stamp, {}, ())
        jobs = {i: _own(i, o.job) for i, o in objects.items()}
        todo = [i for i, job in jobs.items() if job is not None]
        steps = {}
        if todo:  # one encoder pass for all objects; their memory attention, decoder and memory encoder batched
            feats = self.runner.features(self.runner.encode(self.runner.pixels(frame)))
            steps = dict(zip(todo, self.runner.track_many(feats, [jobs[i] for i in todo]), strict=True))
        advances = {i: _own(i, o.advance, self.runner, step=steps.get(i)) for i, o in objects.items()}
        results: dict[int, ObjectResult] = {}
        events: list[TrackEvent] = []
        for i, adv in advances.items():
            results[i], event = _own(i, objects[i].commit, adv, stamp)
            if event is not None:
                events.append(event)
        return FrameResult(stamp, results, tuple(events))

    def warm_up(self, frame_size: tuple[int, int] = (64, 64), objects: int = 2) -> None:
        """Run every path once on a synthetic frame (compiles them when ``compile`` is on).

        Call it after construction, before the first query, so that no query pays
        for compilation. Tracked objects are not touched.
        """
        h, w = frame_size
        frame = np.zeros((h, w, 3), np.uint8)
        mask = np.zeros((h, w), bool)
        mask[h // 4: h // 2, w // 4: w // 2] = True
        grounding = Grounding([frame, frame], [0, 1], [0], [mask])
        with torch.inference_mode():
            tracks = {k: self._new_track(k, check_grounding(grounding, self.runner.image_size, self.runner.feat_size,
                                                           "all", 1, self.runner.model.image_encoder))
                      for k in range(objects)}
            for _ in range(3):
                self._step_objects(tracks, frame, None)
            if objects > 1:
                self._step_objects({0: tracks[0]}, frame, None)


def _own(obj_id: int, work: Callable, *args, **kwargs):
    """One object's own part of a step: its failure is an ``ObjectFault`` naming the object (the shared
    encoder and batched decoder fail as themselves: every object is concerned)."""
    try:
        return work(*args, **kwargs)
    except ObjectFault:
        raise
    except Exception as exc:
        raise ObjectFault(obj_id, exc) from exc


def _check(cancelled: Callable[[], bool] | None) -> None:
    if cancelled is not None and cancelled():
        raise Cancelled("cancelled while catching up")


def advance_together(tracker: StreamingTracker, prepared: list[PreparedObject], *, window_index: int | None = None,
                     frame: np.ndarray | None = None, stamp: Any = None) -> list[FrameResult]:
    """Several prepared objects (one answer's [SEG]s) on the same frame, one image encoder pass for all: a
    window frame's features are computed once and lent to every object's grounding for this call; a later
    frame is tracked for all of them at once (memory attention, decoder and memory encoder batched)."""
    if len(prepared) < 2 or (window_index is None and any(p.track.pending_prompts for p in prepared)):
        return [tracker.advance_object(p, window_index=window_index, frame=frame, stamp=stamp) for p in prepared]
    if window_index is not None:
        lent, raw = [], None
        try:
            for p in prepared:
                g = p.grounding
                if window_index not in g.prompts and g.raw_features.get(window_index) is None:
                    if raw is None:
                        pixels = g.pixels.get(window_index)
                        with torch.inference_mode():
                            raw = tracker.runner.encode(pixels if pixels is not None else
                                                        tracker.runner.pixels(g.frames[window_index]))
                    g.raw_features[window_index] = raw
                    lent.append(g)
            return [tracker.advance_object(p, window_index=window_index) for p in prepared]
        finally:
            for g in lent:
                g.raw_features.pop(window_index, None)
    frame, _ = tracker._check_later((frame, stamp), prepared[0].grounding.frame_size, prepared[0].later)
    with torch.inference_mode():
        result = tracker._step_objects({p.obj_id: p.track for p in prepared}, frame, stamp)
    outs = []
    for p in prepared:
        out = FrameResult(stamp, {p.obj_id: result.objects[p.obj_id]},
                          tuple(e for e in result.events if e.obj_id == p.obj_id))
        p.later += 1
        p.frames.append(out)
        outs.append(out)
    return outs


def seed_in_steps(tracker: StreamingTracker, grounding: Grounding, obj_id: int):
    """``seed_object`` as a generator, one model call per ``next``: a prompted frame's encoder pass (when its
    features were not computed by the grounding), yielding None, then its prompt (decoder and memory encoder),
    yielding its window index; the ``PreparedObject`` is its return value."""
    if isinstance(obj_id, bool) or not isinstance(obj_id, int | np.integer):
        raise ValueError(f"obj_id must be an integer, got {obj_id!r}")
    runner = tracker.runner
    g = check_grounding(grounding, runner.image_size, runner.feat_size, tracker.config.prompt_policy,
                        tracker.config.max_prompt_frames, runner.model.image_encoder)
    track = tracker._new_track(int(obj_id), g, prompts=False)
    for idx, mask in g.prompts.items():
        encoded = g.raw_features.get(idx) is None
        with torch.inference_mode():
            feats = tracker._window_features(g, idx)
        if encoded:
            yield None
        with torch.inference_mode():
            tracker._prompt(track, idx, mask, feats)
        yield idx
    track.next_index = g.first_prompt
    return PreparedObject(track, [], g)
