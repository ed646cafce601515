"""The segment node's publisher thread: messages are built and published off the perception worker's path.

The worker hands each frame's output and each track event over (``put``) and
goes on at once; this thread builds the messages (objects, mask, cloud,
overlay, markers) and publishes them, in the order handed over. The queue is
bounded in frames: when the thread falls behind by more than ``max_frames``
outputs, the oldest frame output is dropped and counted (events are never
dropped: a planner must not miss that its object was lost). ``pending`` counts
what is queued or being published, so "the worker is idle and nothing is
pending" still means every output is out.
"""

from __future__ import annotations

import threading
import traceback
from collections import deque
from collections.abc import Callable

MAX_FRAMES = 16  # frame outputs waiting at most (about half a second of a 30-Hz camera)


class PublishQueue:
    def __init__(self, on_drop: Callable[[], None], max_frames: int = MAX_FRAMES, name: str = "publisher"):
        self.max_frames = max_frames
        self._on_drop = on_drop
        self._items: deque[tuple[bool, Callable[[], None]]] = deque()  # (is a frame output, work)
        self._frames = 0
        self._busy = 0  # items taken and being published
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, work: Callable[[], None], frame: bool) -> None:
        """Queue ``work`` (a frame output when ``frame``; else an event, never dropped)."""
        dropped = False
        with self._cond:
            self._items.append((frame, work))
            if frame:
                self._frames += 1
                if self._frames > self.max_frames:  # the oldest frame output goes: the newest matter most
                    for k, (is_frame, _) in enumerate(self._items):
                        if is_frame:
                            del self._items[k]
                            self._frames -= 1
                            self.dropped += 1
                            dropped = True
                            break
            self._cond.notify_all()
        if dropped:
            self._on_drop()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._items) + self._busy

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is published (True) or ``timeout`` passed (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._items and not self._busy, timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._items or self._closed)
                if not self._items:
                    return
                frame, work = self._items.popleft()
                self._frames -= frame
                self._busy += 1
            try:
                work()
            except Exception:  # a bug in building one message must not end the thread
                traceback.print_exc()
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()
