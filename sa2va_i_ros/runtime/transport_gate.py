"""One camera frame, two transports: with ``image_transport: both`` the first copy of a stamp wins.

A camera driver with image_transport publishes every frame raw and compressed;
a node subscribed to both receives each frame twice. The gate remembers the
stamps of the last ``keep`` frames taken, so the later copy is skipped before
it costs a decode. A stamp is taken only once its frame was decoded and
accepted: a corrupt copy on one transport does not hide a good copy on the
other (nothing is lost).

The two copies of a frame arrive within milliseconds of each other; a stamp
seen again ``max_age_s`` later is not a copy but the same stamp sent anew (a
bag played in a loop, a camera whose clock restarted): it goes through, so the
buffer's stamp gate can recognise the new clock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class TransportGate:
    def __init__(self, keep: int = 64, max_age_s: float = 1.0, clock: Callable[[], float] = time.monotonic):
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self._order: deque[int] = deque()
        self._taken: dict[int, float] = {}  # stamp -> when it was taken (clock)
        self._keep, self._max_age, self._clock = keep, max_age_s, clock
        self._lock = threading.Lock()
        self.skipped = 0  # later copies skipped (for diagnostics)

    def taken(self, stamp_ns: int) -> bool:
        """True if a copy of this frame was already taken (the caller skips this one)."""
        with self._lock:
            when = self._taken.get(stamp_ns)
            if when is not None and self._clock() - when <= self._max_age:
                self.skipped += 1
                return True
            return False

    def take(self, stamp_ns: int) -> None:
        with self._lock:
            if stamp_ns in self._taken:
                self._order.remove(stamp_ns)
            self._taken[stamp_ns] = self._clock()
            self._order.append(stamp_ns)
            while len(self._order) > self._keep:
                self._taken.pop(self._order.popleft(), None)

    def clear(self) -> None:
        with self._lock:
            self._order.clear()
            self._taken.clear()
