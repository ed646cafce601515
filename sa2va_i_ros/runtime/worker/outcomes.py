"""How a request ends: answered, joined, abandoned, or (a re-grounding) rejoined under its track id.

``reply`` answers once the new objects reached the newest frame of the window
(STARTED goes out then, followed by the catch-up's lost/found so far); ``join``
ends the request once they joined the live stream; ``abandon`` ends a request
that failed, was cancelled or stopped (an announced track gets STOPPED);
``rejoin`` lets a re-seeded object replace its lost track (``regrounded``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sa2va_i_ros.runtime.session import FrameOutput, SegmentReply

if TYPE_CHECKING:
    from sa2va_i_ros.runtime.worker.job import Job
    from sa2va_i_ros.runtime.worker.worker import PerceptionWorker


def reply(w: PerceptionWorker, job: Job, out: FrameOutput) -> None:
    g, ticket, rec = job.grounding, job.ticket, job.record
    now = w.clock.now()
    rec.replied = now
    result = g.result
    by_id = {o.track_id: o for o in out.objects}
    objects = [by_id[i] for i in rec.track_ids]  # answer order
    for o in objects:
        o.query = ticket.request.query
    timing = {"queue": (rec.started - rec.submitted) * 1e3, **result.timings_ms,
              "propagate": (now - rec.seeded) * 1e3, "total": (now - rec.submitted) * 1e3}
    track_ids = list(rec.track_ids) if ticket.request.track else []
    answer = SegmentReply(True, "", track_ids[0] if track_ids else 0, result.answer,
                          len(g.window), list(result.sampled_indices),
                          [g.window[i].header for i in result.sampled_indices], objects[0], [], timing,
                          track_ids, objects)
    if ticket.request.track:
        query = ticket.request.query
        with w.registry.lock:
            replaced = w.session.announce(job.catch_up, query)
            for old in replaced:
                w.registry.replaced(old, out.header, query)
            for p in job.catch_up.prepared:
                w.registry.announce(p.obj_id, query, out.header, by_id[p.obj_id].score)
            job.announced = True
            for header, stamp_ns, track_id, kind, score in job.pending_events:
                w.registry.event(header, track_id, kind, score, stamp_ns, query=query)
            job.pending_events = []
        answer.replaced = replaced
        answer.message = f"replaced track {', '.join(map(str, replaced))}" if replaced else ""
    if rec.warning:
        answer.message = "; ".join(m for m in (answer.message, rec.warning) if m)
    ticket.reply = answer
    rec.success = True
    w.call(ticket.on_reply, answer)
    if ticket.progress is not None and ticket.request.track:
        ticket.progress("catching_up", 0.95, f"track {', '.join(map(str, track_ids))} answered; joining the "
                                             "live stream")


def join(w: PerceptionWorker, job: Job) -> None:
    cu, rec = job.catch_up, job.record
    w.session.join(cu)
    rec.joined, rec.tracked, rec.skipped = w.clock.now(), cu.tracked, cu.skipped
    if job.ticket.progress is not None:
        job.ticket.progress("tracking", 1.0, f"track {', '.join(str(p.obj_id) for p in cu.prepared)} on the "
                                             "live stream")
    w.end_job(job.ticket.reply)


def abandon(w: PerceptionWorker, job: Job, message: str) -> None:
    """End a request that failed, was cancelled or stopped; an announced track gets STOPPED.

    A re-grounding that failed counts as a miss; one that could not run (its
    track stopped, cancelled) does not (``outcome`` stays "")."""
    if job.ticket.reseed:
        if not message.startswith("cancelled"):
            job.ticket.outcome = "missed"
        w.end_job(SegmentReply(False, message, track_id=job.ticket.reseed))
        return
    if job.catch_up is not None:
        w.session.forget(job.catch_up)
        if job.announced:
            with w.registry.lock:
                for p in job.catch_up.prepared:
                    w.registry.drop(p.obj_id, w.newest_header, job.ticket.request.query)
    answer = job.grounding.result.answer if job.grounding is not None and job.grounding.result else ""
    w.counts["requests_failed"] += 1
    w.end_job(SegmentReply(False, message, answer=answer))


def rejoin(w: PerceptionWorker, job: Job, out: FrameOutput, frame) -> None:
    """The re-seeded object caught up: it replaces the lost track under the same id (``regrounded``), if
    that track is still lost and the new object is visible; else it is dropped."""
    ticket, cu, track_id = job.ticket, job.catch_up, job.ticket.reseed
    new = next((o for o in out.objects if o.track_id == track_id), None)
    with w.registry.lock:
        tracked = w.registry.is_live(track_id) and track_id in w.session.tracker.object_ids
        if not tracked or w.session.tracker.is_visible(track_id):
            why = "stopped" if not tracked else "found by the tracker meanwhile"
            w.end_job(SegmentReply(False, f"track {track_id} {why}", track_id=track_id))
            return
        if new is None or not new.visible:
            ticket.outcome = "missed"
            w.end_job(SegmentReply(False, f"track {track_id}: the re-seeded object was lost again while it "
                                          "caught up", track_id=track_id))
            return
        w.session.join(cu)
        ticket.outcome = "found"
        job.record.joined = w.clock.now()
        w.registry.event(out.header, track_id, "regrounded", new.score, frame.stamp_ns)
        if w.session.tracker.object_ids == [track_id]:  # its newest frame: out now when no other output of it
            w.registry.publish(FrameOutput(out.header, [new], []), frame, events=False)
    w.end_job(SegmentReply(True, "regrounded", track_id=track_id))
