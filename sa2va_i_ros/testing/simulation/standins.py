"""Stand-ins for the grounding engine and the streaming tracker: they cost simulated time, nothing else.

``StandInEngine.ground_steps`` yields the same kinds of steps as
``GroundingEngine.ground_steps`` (one per frame preprocessed, per vision-tower
step, per prefill chunk, per token, per SAM2-encoded frame, per [SEG]) and
spends the profile's cost of each on the host or the (asynchronous) device
(``STAGES``, ``device.py``); its masks cover a corner of
the frame, or nothing when ``finds(query, time)`` says the object is not in
view when the grounding starts (its window ends then). The
``StandInTracker`` has the streaming tracker's interface as the worker uses it
(seed, advance, join, step, stop, presence) and the real presence hysteresis;
an object's per-frame presence score comes from a ``scene`` function of
(track key, frame stamp in ns), so scenarios can hide an object for a while.
The key is the track id, or (id, n) for the n-th re-seeding of that id (a
re-grounding): the re-seeded object and the lost one it replaces may see
differently, as SAM2 does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from sa2va_i_ros.errors import Cancelled, QueryError
from sa2va_i_ros.grounding.engine import GroundingOptions
from sa2va_i_ros.model.generation import drain
from sa2va_i_ros.model.sampling import sample_indices, unique_in_order
from sa2va_i_ros.testing.simulation.clock import SimClock
from sa2va_i_ros.testing.simulation.device import AsyncDevice
from sa2va_i_ros.testing.simulation.profiles import Profile
from sa2va_i_ros.tracking import FrameResult, ObjectResult, PreparedObject, TrackerConfig
from sa2va_i_ros.tracking.grounding import check_grounding
from sa2va_i_ros.tracking.presence import PresenceMonitor

Scene = Callable[[Any, int], float]  # (track key: id or (id, n), stamp ns) -> presence score


def always_visible(track_id: int, stamp_ns: int) -> float:
    return 0.9


@dataclass
class StandInResult:
    """The parts of ``GroundingResult`` the session uses."""

    sampled_indices: list[int]
    answer: str
    masks: np.ndarray | None
    reason: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def has_mask(self) -> bool:
        return self.masks is not None

    @property
    def num_objects(self) -> int:
        return self.answer.count("[SEG]") if self.has_mask else 0

    def tracker_grounding(self, frames, stamps, prompt_frames: str = "all", seg: int = 0):
        from sa2va_i_ros.tracking import Grounding

        sampled = self.sampled_indices[:1] if prompt_frames == "first" else self.sampled_indices
        return Grounding(list(frames), list(stamps), list(sampled), list(self.masks[: len(sampled)]))


HOST, LAUNCH, READ = "host", "launch", "read"  # how a stage spends its time (device.py)
STAGES = {"preprocess": HOST, "vision": LAUNCH, "prefill": LAUNCH, "token": READ,  # a token is read back
          "sam2_encoder": LAUNCH, "seg_decode": READ}  # the masks are read back


class StandInEngine:
    def __init__(self, clock: SimClock, profile: Profile, answer: str = "Sure, [SEG].",
                 finds: Callable[[str, float], bool] | None = None, device: AsyncDevice | None = None):
        self.clock, self.profile, self.answer, self.finds = clock, profile, answer, finds
        self.device = device or AsyncDevice(clock, asynchronous=False)
        self.calls: list[str] = []  # stages, in order (tests read them)

    def check_query(self, query: str) -> None:
        if "[SEG]" in query:
            raise QueryError("the query contains reserved token text '[SEG]'")

    def _spend(self, stage: str, seconds: float, timings: dict[str, float], key: str) -> str:
        how = STAGES[stage]
        if how == HOST:
            self.clock.advance(seconds)
        elif how == LAUNCH:
            self.device.launch(seconds)
        else:
            self.device.read(seconds)
        timings[key] = timings.get(key, 0.0) + seconds * 1e3
        self.calls.append(stage)
        return stage

    def ground_steps(self, frames, query: str, options: GroundingOptions | None = None, progress=None,
                     cancelled: Callable[[], bool] | None = None):
        opts, p, t = options or GroundingOptions(), self.profile, {}
        report = progress or (lambda stage, fraction, detail: None)
        self.check_query(query)
        in_view = self.finds is None or self.finds(query, self.clock.now())
        sampled = sample_indices(len(frames), opts.num_frames, opts.sampling)
        unique = unique_in_order(sampled)
        report("sampling", 0.05, f"{len(unique)} frames")
        for _ in unique:
            yield self._spend("preprocess", p.preprocess_s, t, "preprocess")
        if cancelled is not None and cancelled():
            raise Cancelled("cancelled after preprocessing")
        report("language_model", 0.15, "vision tower and greedy generation")
        per_step = opts.vision_frames_per_step or len(unique)
        for start in range(0, len(unique), per_step):
            yield self._spend("vision", p.vision_s * len(unique[start:start + per_step]), t, "language")
        tokens = len(unique) * 256 + p.text_tokens
        chunk = opts.prefill_chunk if 0 < opts.prefill_chunk < tokens else tokens
        for start in range(0, tokens, chunk):
            yield self._spend("prefill", p.prefill_s_per_token * min(chunk, tokens - start), t, "language")
        for _ in range(p.answer_tokens - 1):
            if cancelled is not None and cancelled():
                raise Cancelled("cancelled during generation")
            yield self._spend("token", p.token_s, t, "language")
        if "[SEG]" not in self.answer:
            return StandInResult(sampled, self.answer, None, f"the model answered without a [SEG] token: "
                                                             f"{self.answer!r}", t)
        report("decoding", 0.6, f"SAM2 image encoder on {len(unique)} frames")
        for _ in unique:
            yield self._spend("sam2_encoder", p.sam2_encode_s, t, "decode")
        yield self._spend("seg_decode", p.seg_decode_s, t, "decode")
        h, w = frames[0].shape[:2]
        masks = np.zeros((len(sampled), h, w), bool)
        masks[:, : h // 2, : w // 2] = in_view
        return StandInResult(sampled, self.answer, masks, "", t)


@dataclass
class _Track:
    obj_id: int
    frame_size: tuple[int, int]
    presence: PresenceMonitor
    pending_prompts: dict = field(default_factory=dict)
    next_index: int = 0
    key: Any = None  # where ``processed`` records it: the id, or (id, n) for its n-th re-seeding


class StandInTracker:
    def __init__(self, clock: SimClock, profile: Profile, config: TrackerConfig | None = None,
                 scene: Scene = always_visible, device: AsyncDevice | None = None, own_encoder: bool = False):
        """``own_encoder``: a tracker on another SAM2 than the checkpoint's (``tracker_model``), which encodes
        every prompted frame itself when seeding."""
        self.clock, self.profile, self.scene, self.own_encoder = clock, profile, scene, own_encoder
        self.device = device or AsyncDevice(clock, asynchronous=False)
        self.config = config or TrackerConfig()
        self._objects: dict[int, _Track] = {}
        # track id -> stamps it processed, in order; a re-seeded object (re-grounding, same id) under (id, n)
        self.processed: dict[Any, list[Any]] = {}
        self.seeds: dict[int, int] = {}  # track id -> times it was seeded

    @property
    def object_ids(self) -> list[int]:
        return list(self._objects)

    def is_visible(self, obj_id: int) -> bool:
        return self._objects[obj_id].presence.visible

    def seed_object(self, grounding, *, obj_id: int) -> PreparedObject:
        return drain(self.seed_steps(grounding, obj_id=obj_id))

    def seed_steps(self, grounding, *, obj_id: int):
        """As ``StreamingTracker.seed_steps``: per prompted frame its encoder pass (``own_encoder`` only),
        yielding None, then its prompt, yielding its index; returns the PreparedObject."""
        g = check_grounding(grounding, 64, 4, self.config.prompt_policy, 64)
        for idx in g.prompts:
            if self.own_encoder:
                self.device.launch(self.profile.encode_s)
                yield None
            self.device.launch(self.profile.seed_prompt_s)  # the prompt's logits stay on the device
            yield idx
        c = self.config
        n = self.seeds[obj_id] = self.seeds.get(obj_id, 0) + 1
        track = _Track(obj_id, g.frame_size, PresenceMonitor(obj_id, c.threshold, c.lost_after, c.found_after),
                       dict(g.prompts), g.first_prompt, obj_id if n == 1 else (obj_id, n - 1))
        return PreparedObject(track, [], g)

    def _result(self, track: _Track, header: Any, prompt: bool) -> FrameResult:
        stamp_ns = header["stamp_ns"] if isinstance(header, dict) else int(header)
        score = 0.99995 if prompt else self.scene(track.key, stamp_ns)
        event = track.presence.update(score, header)
        mask = np.zeros(track.frame_size, bool)
        mask[: track.frame_size[0] // 2, : track.frame_size[1] // 2] = score >= 0.5
        self.processed.setdefault(track.key, []).append(stamp_ns)
        result = ObjectResult(track.obj_id, mask, score, track.presence.visible, header, track.next_index, prompt,
                              None)
        track.next_index += 1
        return FrameResult(header, {track.obj_id: result}, (event,) if event else ())

    def advance_object(self, prepared: PreparedObject, *, window_index=None, frame=None, stamp=None,
                       encoded: bool = False):
        """``encoded``: the frame's encoder pass was charged already (``advance_objects``)."""
        g, track = prepared.grounding, prepared.track
        tracked_s = self.profile.object_s if encoded else self.profile.track_s
        if window_index is not None:
            if window_index <= prepared.position:
                raise ValueError(f"window frame {window_index} again")
            prompt = window_index in g.prompts
            if any(prepared.position < i < window_index for i in g.prompts):
                raise ValueError("a prompted frame was skipped")
            track.pending_prompts.pop(window_index, None)
            self.device.read(self.profile.prompt_frame_s if prompt else tracked_s)  # with its own encoder pass
            prepared.position = window_index
            out = self._result(track, g.stamps[window_index], prompt)
        else:
            if track.pending_prompts:
                raise ValueError("later frames before every prompt was reached")
            self.device.read(tracked_s)
            prepared.later += 1
            out = self._result(track, stamp, False)
        prepared.frames.append(out)
        return out

    def advance_objects(self, prepared, **where) -> list[FrameResult]:
        """Several joining objects on one frame: one encoder pass, then each object's part (as the tracker)."""
        shared = len(prepared) > 1 and where.get("window_index") not in prepared[0].grounding.prompts
        if shared:  # (a prompted frame needs no encoder pass)
            self.device.launch(self.profile.encode_s)
        return [self.advance_object(p, encoded=shared, **where) for p in prepared]

    def join(self, prepared: PreparedObject) -> None:
        if prepared.track.pending_prompts or prepared.obj_id in self._objects:
            raise ValueError(f"cannot join object {prepared.obj_id}")
        self._objects[prepared.obj_id] = prepared.track

    def step(self, frame: np.ndarray, stamp: Any) -> FrameResult:
        self.device.read(self.profile.live_s(len(self._objects)))  # one encoder pass, then each object; scores read
        results = [self._result(t, stamp, False) for t in self._objects.values()]
        return FrameResult(stamp, {i: o for r in results for i, o in r.objects.items()},
                           tuple(e for r in results for e in r.events))

    def remove_object(self, obj_id: int) -> None:
        del self._objects[obj_id]

    def set_presence(self, threshold: float, lost_after: int, found_after: int, also=()) -> None:
        self.config = replace(self.config, threshold=threshold, lost_after=lost_after, found_after=found_after)
        for track in [*self._objects.values(), *(p.track for p in also)]:
            track.presence.configure(threshold, lost_after, found_after)
