"""SaSaSa2VA's five inference modes: which frames the language model sees, which [SEG] decodes which frame.

SaSaSa2VA (``predict_forward`` and ``reverse_index`` of its
``modeling_sasasa2va_chat.py``) always shows the language model 100 frames S,
cut into 10 clips of 10 (clip c = S[10c..10c+9]), and reads ten [SEG] tokens,
the c-th for clip c. With U(i) = int(i·T/100) and W = sorted(i mod T), i = 0..99:

=================  ==========================  ====================================================
mode               S                           frames decoded (T = 100: frame f, clip f // 10)
=================  ==========================  ====================================================
uniform            U                           every frame f, clip 10f // T
uniform_plus       U                           T > 100: as uniform. T < 100: every position i of S
                                               (duplicates too) with clip i // 10; a frame's
                                               logits are the mean over its positions
q_frame            the 100 given indices       T < 100: as uniform_plus with the given S.
                                               T > 100: frames 0..99 with clip f // 10, SAM2
                                               propagates forward through the rest
wrap_around        W                           T < 100: frame f with clip min{i: W[i] = f} // 10.
                                               T > 100: as q_frame (frames 0..99, propagation)
wrap_around_plus   W if T <= 100, else U       wrap_around for T <= 100, uniform for T > 100
=================  ==========================  ====================================================

A ``ModePlan`` lists the decoded "positions" as (frame, clip) pairs: every
position is decoded alone (no memory); a frame with several positions gets the
mean of their logits (``uniform_plus`` / ``q_frame``, T < 100; the official code
averages at SAM2's resolution, so a pixel is on when the mean logit is > 0); a
frame with none is reached by propagation. The official code averages an empty
set for a frame that a q_frame selection misses (NaN, an empty mask): here that
is a ``ValueError`` naming the frames.
"""

from __future__ import annotations

from dataclasses import dataclass

MODES = ("uniform", "uniform_plus", "q_frame", "wrap_around", "wrap_around_plus")
NUM_CLIPS = 10
CLIP_LENGTH = 10
NUM_SAMPLED = NUM_CLIPS * CLIP_LENGTH  # 100 frames for the language model


def uniform_indices(num_frames: int) -> list[int]:
    """U(i) = int(i·T/100): exact in integers (i·T is an integer)."""
    return [i * num_frames // NUM_SAMPLED for i in range(NUM_SAMPLED)]


def wrap_indices(num_frames: int) -> list[int]:
    """W = sorted(i mod T for i in 0..99); frames 0..99 when T >= 100."""
    return sorted(i % num_frames for i in range(NUM_SAMPLED))


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown SaSaSa2VA mode {mode!r}; expected one of {', '.join(MODES)}")
    return mode


def sampled_indices(num_frames: int, mode: str, q_frame: list[int] | None = None) -> list[int]:
    """S: the 100 frames the language model sees, in clip order (clip c = S[10c:10c+10])."""
    check_mode(mode)
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {num_frames!r}")
    if mode == "q_frame":
        return check_q_frame(q_frame, num_frames)
    if mode == "wrap_around" or (mode == "wrap_around_plus" and num_frames <= NUM_SAMPLED):
        return wrap_indices(num_frames)
    return uniform_indices(num_frames)


def check_q_frame(q_frame, num_frames: int) -> list[int]:
    """The user's 100 q_frame indices, each a frame of the video (used in the given order)."""
    if q_frame is None:
        raise ValueError("mode q_frame needs 100 frame indices chosen beforehand (SaSaSa2VA reads them from "
                         "selected_frames.json); none were given")
    indices = list(q_frame)
    if len(indices) != NUM_SAMPLED:
        raise ValueError(f"mode q_frame needs exactly {NUM_SAMPLED} frame indices, got {len(indices)}")
    bad = [i for i in indices if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < num_frames]
    if bad:
        raise ValueError(f"q_frame indices must be frames of the {num_frames}-frame video; got {bad[:5]}")
    return indices


@dataclass(frozen=True)
class ModePlan:
    """What one mode does on a T-frame video."""

    mode: str
    num_frames: int
    sampled: tuple[int, ...]  # S, 100 frame indices in clip order
    positions: tuple[tuple[int, int], ...]  # (frame, clip): each decoded alone by the [SEG] of that clip
    propagate: bool  # SAM2 tracks from the decoded frames through the frames no position covers

    def positions_of(self, frame: int) -> list[int]:
        """Indices into ``positions`` that decode ``frame``."""
        return [k for k, (f, _) in enumerate(self.positions) if f == frame]

    @property
    def averaged(self) -> bool:
        """Some frame is decoded more than once (its logits are averaged)."""
        return len({f for f, _ in self.positions}) < len(self.positions)


def plan(num_frames: int, mode: str, q_frame: list[int] | None = None) -> ModePlan:
    """The mode's plan on ``num_frames`` frames; ``q_frame``: the 100 indices for mode q_frame."""
    s = sampled_indices(num_frames, mode, q_frame)
    t = num_frames
    first_hundred = tuple((f, f // CLIP_LENGTH) for f in range(min(t, NUM_SAMPLED)))
    every_frame = tuple((f, NUM_CLIPS * f // t) for f in range(t))
    if t == NUM_SAMPLED:
        positions, propagate = first_hundred, False
    elif mode == "uniform" or (mode == "wrap_around_plus" and t > NUM_SAMPLED):
        positions, propagate = every_frame, False
    elif mode == "uniform_plus":
        positions = tuple((f, i // CLIP_LENGTH) for i, f in enumerate(s)) if t < NUM_SAMPLED else every_frame
        propagate = False
    elif mode == "q_frame" and t < NUM_SAMPLED:
        positions, propagate = tuple((f, i // CLIP_LENGTH) for i, f in enumerate(s)), False
        missing = sorted(set(range(t)) - set(s))
        if missing:
            raise ValueError(f"the q_frame indices miss frame(s) {missing[:10]} of this {t}-frame video; "
                             "SaSaSa2VA averages the logits of each frame over its selections, an empty set "
                             "for these (NaN in the official code): every frame must be selected at least once")
    elif t < NUM_SAMPLED:  # wrap_around, wrap_around_plus
        first = {}
        for i, f in enumerate(s):
            first.setdefault(f, i)
        positions, propagate = tuple((f, first[f] // CLIP_LENGTH) for f in range(t)), False
    else:  # q_frame or wrap_around with T > 100: prompt frames 0..99, SAM2 propagates
        positions, propagate = first_hundred, True
    return ModePlan(mode, t, tuple(s), positions, propagate)


STREAMING_MODES = tuple(m for m in MODES if m != "q_frame")  # q_frame needs indices chosen for a known video


def seed_frames(p: ModePlan) -> list[int]:
    """The frames the node seeds its streaming tracker from (docs/SASASA2VA.md, "In the node").

    The last clip's sampled frames S[90..99] (the key frame and the nine grid
    frames the language model saw as its tenth clip) and the newest frame, each
    where the plan decodes it; oldest first. At most eleven frames, whatever T.
    """
    decoded = {f for f, _ in p.positions}
    seeds = {f for f in p.sampled[NUM_SAMPLED - CLIP_LENGTH:] if f in decoded}
    if p.num_frames - 1 in decoded:
        seeds.add(p.num_frames - 1)
    if not seeds:
        raise ValueError(f"mode {p.mode}: no frame of the last clip is decoded on {p.num_frames} frames")
    return sorted(seeds)
