"""Request intake: tickets, the bounded queue, "busy", and who goes first.

A request waits in the queue until the worker takes it (user requests before
internal re-groundings, then in arrival order). Beyond ``max_queued_requests``
waiting user requests the answer is "busy" at once, so every caller is
answered. ``Intake`` is used under the worker's lock.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from sa2va_i_ros.runtime.session import SegmentReply, SegmentRequest

USER, INTERNAL = 0, 1  # request priorities: user requests go first


@dataclass
class Ticket:
    """A submitted request. ``on_reply`` gets the answer once the object is grounded and tracked to the
    newest window frame (or the failure); ``on_done`` once it joined the live stream (or failed)."""

    request: SegmentRequest
    on_reply: Callable[[SegmentReply], None]
    on_done: Callable[[SegmentReply], None] | None = None
    progress: Callable[[str, float, str], None] | None = None
    priority: int = USER
    id: int = 0
    submitted: float = 0.0
    cancelled: bool = False
    reply: SegmentReply | None = None
    done: bool = False
    record: Record | None = None
    reseed: int = 0  # an internal re-grounding: the lost track it re-seeds under the same id
    outcome: str = ""  # a re-grounding's end: found, missed, or "" (could not run: tried again later)


@dataclass
class Record:
    """When things happened to one request (worker clock), for the simulator and the benchmarks."""

    ticket_id: int
    submitted: float
    started: float | None = None
    seeded: float | None = None
    replied: float | None = None
    joined: float | None = None
    first_live: float | None = None  # first live output holding the new track
    track_ids: list[int] = field(default_factory=list)
    tracked: int = 0
    skipped: int = 0
    success: bool = False
    warning: str = ""  # the catch-up cannot meet max_catch_up_sec (budget.py); said in the reply


class Intake:
    """The waiting tickets, in the order they will run."""

    def __init__(self) -> None:
        self.queue: list[Ticket] = []
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self.queue)

    def ticket(self, request: SegmentRequest, on_reply, on_done=None, progress=None, priority: int = USER,
               now: float = 0.0, reseed: int = 0) -> Ticket:
        return Ticket(request, on_reply, on_done, progress, priority, next(self._ids), now, reseed=reseed)

    def users_ahead(self, running: Ticket | None) -> tuple[bool, int]:
        """(whether a user request runs or is next, how many user requests wait behind it)."""
        users = [t for t in self.queue if t.priority == USER]
        user_runs = running is not None and running.priority == USER
        return user_runs or bool(users), len(users) - (bool(users) and not user_runs)  # the head runs next

    def add(self, ticket: Ticket) -> Record:
        self.queue.append(ticket)
        self.queue.sort(key=lambda t: (t.priority, t.id))
        ticket.record = Record(ticket.id, ticket.submitted)
        return ticket.record

    def pop(self) -> Ticket:
        return self.queue.pop(0)

    def remove(self, ticket: Ticket) -> bool:
        """Take a waiting ticket out (cancelled before it ran); False when it is not waiting."""
        for k, t in enumerate(self.queue):
            if t is ticket:
                del self.queue[k]
                return True
        return False

    def user_waiting(self) -> bool:
        return any(t.priority == USER for t in self.queue)

    def pending_tracks(self) -> int:
        """Queued user requests that will start tracks (re-groundings re-seed a track they already count)."""
        return sum(1 for t in self.queue if t.request.track and not t.reseed)

    def take_all(self) -> list[Ticket]:
        tickets, self.queue = self.queue, []
        return tickets
