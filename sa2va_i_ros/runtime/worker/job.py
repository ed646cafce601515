"""One request's way through the worker, as a state machine: start -> grounding -> seeding -> catching up.

Each phase is one function that does one bounded step and says what comes
next; the worker runs one step per background turn (``advance``). A request
ends in ``outcomes.py``: answered once its objects reach the newest window
frame (``reply``), done once they join the live stream (``join``), or failed,
cancelled or stopped (``abandon``). A re-grounding (``ticket.reseed``) re-seeds a
lost track under its own id and, once caught up, replaces it (``rejoin``).
"""

from __future__ import annotations

import enum
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sa2va_i_ros.errors import Cancelled, Sa2VAError
from sa2va_i_ros.runtime.catch_up import CatchUp
from sa2va_i_ros.runtime.faults import describe, release
from sa2va_i_ros.runtime.scheduling import affordable_frames
from sa2va_i_ros.runtime.session import FrameOutput, Grounding, SegmentReply
from sa2va_i_ros.runtime.worker.budget import budget_check
from sa2va_i_ros.runtime.worker.intake import Record, Ticket
from sa2va_i_ros.runtime.worker.outcomes import abandon, join, rejoin, reply

if TYPE_CHECKING:
    from sa2va_i_ros.runtime.worker.worker import PerceptionWorker


class Phase(enum.Enum):
    START = "start"  # queued: the window is not taken yet
    GROUNDING = "grounding"  # one grounding step at a time (GroundingEngine.ground_steps)
    SEEDING = "seeding"  # the answer's masks seed the tracker
    CATCHING_UP = "catching_up"  # one catch-up frame at a time, until the objects reach the newest frame


@dataclass
class Job:
    ticket: Ticket
    record: Record
    grounding: Grounding | None = None
    catch_up: CatchUp | None = None
    phase: Phase = Phase.START
    held: list = field(default_factory=list)  # frames that arrived while grounding ran
    pending_events: list = field(default_factory=list)  # catch-up events before the reply (header, stamp, ...)
    seeding: Generator | None = None  # Session.seed_steps: an encoder pass or a prompt per step
    seeded_prompts: int = 0  # prompted frames seeded so far (all objects)
    seed_spent: float = 0.0  # seconds spent on the prompted frame under way
    announced: bool = False

    @property
    def holds_frames(self) -> bool:
        """Frames that arrive now are kept for the catch-up (references to the buffered copies)."""
        return self.phase in (Phase.GROUNDING, Phase.SEEDING)

    def hold(self, frame, max_frames: int, max_bytes: int) -> int:
        """Keep a frame that arrived during the grounding, within the buffer's budget (``max_frames`` frames,
        ``max_bytes`` bytes: what the buffer would hold); beyond it, every second held frame goes (never the
        newest), as the catch-up thins the frames it holds (``CatchUp.add``). Returns how many went."""
        self.held.append(frame)
        dropped = 0
        while len(self.held) > 1 and (len(self.held) > max_frames or held_bytes(self.held) > max_bytes):
            gone = self.held[:-1:2]
            self.held = [f for k, f in enumerate(self.held) if k % 2 or k == len(self.held) - 1]
            dropped += len(gone)
        return dropped


def held_bytes(frames) -> int:
    return sum(f.nbytes for f in frames)


def advance(w: PerceptionWorker, job: Job) -> bool:
    """One step of ``job`` (its phase's function); a failure or cancel ends it with the reason.

    Any other exception (out of memory, a bug) is contained the same way: the
    request ends with what failed, on which device and what to try, what it held
    is released, /diagnostics shows the fault (False: not a good step)."""
    phase = job.phase
    try:
        if job.ticket.cancelled:
            raise Cancelled(f"cancelled while {'queued' if phase is Phase.START else phase.value}")
        PHASES[phase](w, job)
    except Cancelled as exc:
        if w.closed and not job.ticket.cancelled:
            return True  # the shutdown stopped the step (cooperatively): close() answers with its reason
        abandon(w, job, f"cancelled ({exc})")
    except Sa2VAError as exc:
        abandon(w, job, str(exc))
    except Exception as exc:
        job.held = []
        release(w.device)
        what = PHASE_WORDS[phase] + (f" (re-grounding track {job.ticket.reseed})" if job.ticket.reseed else "")
        message = describe(what, exc, w.device)
        w.health.fault(phase.value, message, job.record.track_ids)
        w.faults_log(message)
        try:
            abandon(w, job, message)
        except Exception:  # its state may be half made: end it whatever it held
            w.end_job(SegmentReply(False, message, track_id=job.ticket.reseed))
        return False
    return True


def start(w: PerceptionWorker, job: Job) -> None:
    """Take the window (``window_sec`` and the buffer limits decide what is ground on)."""
    ticket = job.ticket
    if ticket.reseed:
        if ticket.reseed not in w.session.tracker.object_ids or ticket.reseed not in w.tracks:
            raise Cancelled(f"track {ticket.reseed} is not tracked any more")  # stopped, or not joined yet
        w.counts["reground_attempts"] += 1
    job.grounding = w.session.start_grounding(ticket.request, ticket.progress, lambda: ticket.cancelled or w.closed)
    job.phase = Phase.GROUNDING


def ground(w: PerceptionWorker, job: Job) -> None:
    """One grounding step; at the end, a failure unless the answer has a mask (and, re-grounding, a find)."""
    g = job.grounding
    try:
        next(g.steps)
        return
    except StopIteration as done:
        g.result = done.value
    result = g.result
    if not result.has_mask:
        raise Sa2VAError(result.reason)
    if job.ticket.reseed and not w.session.found(g):
        raise Sa2VAError(f"re-grounding track {job.ticket.reseed}: the model's masks on the last "
                         f"{len(g.window)} frames are empty")
    job.phase = Phase.SEEDING


def seed(w: PerceptionWorker, job: Job) -> None:
    """Seed the tracker with every [SEG]'s prompts, one model call per step (a prompted frame's encoder pass,
    its prompt; the catch-up's deadline is set before the first: the budget covers seeding); then the frames
    held meanwhile join the catch-up."""
    now = w.clock.now()
    settings = w.session.settings
    if job.ticket.reseed and job.ticket.reseed not in w.tracks:
        raise Cancelled(f"track {job.ticket.reseed} was stopped during its re-grounding")
    if job.seeding is None:
        job.record.seeded = now
        job.seeding = w.session.seed_steps(job.grounding, now + settings.max_catch_up_sec,
                                           w.session.buffer.max_frames, obj_id=job.ticket.reseed or None)
    try:
        prompted = next(job.seeding) is not None  # else an encoder pass
    except StopIteration as done:
        cu = done.value
    else:
        w.device_time.sync()
        job.seed_spent += w.clock.now() - now
        if prompted:
            w.costs.seeded(job.seed_spent)
            job.seed_spent, job.seeded_prompts = 0.0, job.seeded_prompts + 1
            budget_check(w, job)
        return
    job.record.track_ids = [p.obj_id for p in cu.prepared]
    job.catch_up, job.phase = cu, Phase.CATCHING_UP
    if settings.gap_policy == "skip" and job.held:  # only the newest frame that came during grounding
        w.counts["frames_thinned"] += len(job.held) - 1
        cu.skipped += len(job.held) - 1
        job.held = job.held[-1:]
    for f in job.held:
        w.counts["frames_thinned"] += cu.add(f)
    job.held = []
    if job.ticket.progress is not None:
        job.ticket.progress("catching_up", 0.9, f"propagating from the first prompted frame to the newest "
                                                f"of {len(cu.ahead)} frames within {settings.max_catch_up_sec} s")


def catch_up(w: PerceptionWorker, job: Job) -> None:
    """One catch-up frame (thinned to the budget); the reply at the window's end, the join at the newest."""
    cu, ticket = job.catch_up, job.ticket
    t0 = w.clock.now()
    step = cu.step(w.session.tracker, affordable(w, cu))
    w.device_time.sync()  # device time: what the step queued is done (device_time.py)
    if step.tracked:
        w.costs.caught_up(w.clock.now() - t0, len(cu.prepared))
    w.counts["frames_catch_up"] += 1
    w.counts["frames_thinned"] += step.skipped
    out = w.session.output(step.result, step.frame.size)
    if ticket.reseed:  # the lost track goes on live meanwhile: nothing of the re-seeded one goes out yet
        if cu.done:
            rejoin(w, job, out, step.frame)
        return
    if job.announced:
        _catch_up_output(w, job, out, step.frame)
    else:
        job.pending_events += [(out.header, step.frame.stamp_ns, *e) for e in out.events]
    if step.window_end:
        reply(w, job, out)
        if not ticket.request.track:
            w.session.forget(cu)
            w.end_job(ticket.reply)
            return
    if cu.done and job.announced:
        join(w, job)


PHASES = {Phase.START: start, Phase.GROUNDING: ground, Phase.SEEDING: seed, Phase.CATCHING_UP: catch_up}
PHASE_WORDS = {Phase.START: "taking the window", Phase.GROUNDING: "grounding", Phase.SEEDING: "seeding the tracker",
               Phase.CATCHING_UP: "the catch-up"}


def affordable(w: PerceptionWorker, cu: CatchUp) -> float:
    """Catch-up frames that still fit before the deadline, with the live steps in between (scheduling.py)."""
    own = w.costs.catch_up_s(len(cu.prepared))
    if own is None:
        return float("inf")  # nothing measured yet: this frame is tracked and measured
    tracked, publish = len(w.session.tracker.object_ids), w.costs.publish_s
    live = (w.costs.step_s(tracked) or 0.0) + (publish if tracked else 0.0)
    joined_live = (w.costs.step_s(tracked + len(cu.prepared)) or 0.0) + publish
    # room for the first live step with the new object, and one more live step (prompted frames' turn)
    remaining = cu.deadline - w.clock.now() - joined_live - live
    return affordable_frames(remaining, own, live, w.costs.frame_period_s)


def _catch_up_output(w: PerceptionWorker, job: Job, out: FrameOutput, frame) -> None:
    """Events always; the frame's objects only while nothing else is tracked and it is newer than the
    window (with other objects tracked, frames before the join are already out without it)."""
    alone = not w.session.tracker.object_ids
    w.publish(out if alone and frame.stamp_ns > job.catch_up.window_end_ns else
              FrameOutput(out.header, [], out.events), frame)
