"""Automatic re-grounding as internal requests: queued by the schedule, pre-empted by users, given up.

``regrounding.Regrounder`` decides when a lost track is due; these functions
are its side of the worker: ``submit`` queues a low-priority request that
grounds the track's query on the recent frames to re-seed it under the same id,
``preempt`` lets a waiting user request go first while a re-grounding still
grounds (the attempt is retried later and is not a miss), ``gave_up`` publishes
the event after the last miss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sa2va_i_ros.runtime.regrounding import RegroundSettings
from sa2va_i_ros.runtime.session import SegmentReply, SegmentRequest
from sa2va_i_ros.runtime.worker.intake import INTERNAL
from sa2va_i_ros.runtime.worker.job import Job, Phase

if TYPE_CHECKING:
    from sa2va_i_ros.runtime.worker.worker import PerceptionWorker


def reground_settings(settings) -> RegroundSettings:
    """The re-grounding schedule's settings from the session's."""
    return RegroundSettings(settings.reground_after_sec, settings.reground_max_attempts, settings.reground_backoff,
                            settings.reground_window_sec)


def submit(w: PerceptionWorker, track_id: int, query: str, on_done: Callable[[bool | None, int], None]) -> None:
    """Queue a low-priority request that grounds ``query`` on the recent frames to re-seed ``track_id``;
    ``on_done(found, stamp_ns)`` (found None: it could not run, try again)."""
    request = SegmentRequest(query, window_sec=w.session.settings.reground_window_sec)

    def done(reply: SegmentReply) -> None:
        found = {"found": True, "missed": False}.get(ticket.outcome)
        w.counts["regrounded" if found else "reground_missed" if found is False else "reground_deferred"] += 1
        newest = w.newest
        on_done(found, newest.stamp_ns if newest is not None else 0)

    with w.lock:
        ticket = w.intake.ticket(request, lambda reply: None, done, None, INTERNAL, w.clock.now(), reseed=track_id)
        if w.closed:
            ticket.done = True
            return
        w.intake.add(ticket)
        w.lock.notify_all()


def preempt(w: PerceptionWorker, job: Job) -> bool:
    """A re-grounding still grounding gives way to a waiting user request (it is tried again later)."""
    if job.ticket.priority != INTERNAL or job.phase not in (Phase.START, Phase.GROUNDING):
        return False
    with w.lock:
        if not w.intake.user_waiting():
            return False
    w.end_job(SegmentReply(False, "a user request goes first", track_id=job.ticket.reseed))
    return True


def gave_up(w: PerceptionWorker, track_id: int) -> None:
    with w.registry.lock:
        if not w.registry.is_live(track_id):
            return
        w.counts["reground_gave_up"] += 1
        w.registry.emit.event(w.newest_header, track_id, w.registry.queries[track_id], "gave_up", 0.0)
