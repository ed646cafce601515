"""One camera frame, two transports: with ``image_transport: both`` the first copy of a stamp wins.

A camera driver with image_transport publishes every frame raw and compressed;
a node subscribed to both receives each frame twice. The gate remembers the
stamps of the last ``keep`` frames taken, so the later copy is skipped before
it costs a decode. A stamp is taken only once its frame was decoded and
accepted: a corrupt copy on one transport does not hide a good copy on the
other (nothing is lost).
"""

from __future__ import annotations

import threading
from collections import deque


class TransportGate:
    def __init__(self, keep: int = 64):
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self._order: deque[int] = deque()
        self._taken: set[int] = set()
        self._keep = keep
        self._lock = threading.Lock()
        self.skipped = 0  # later copies skipped (for diagnostics)

    def taken(self, stamp_ns: int) -> bool:
        """True if a copy of this frame was already taken (the caller skips this one)."""
        with self._lock:
            if stamp_ns in self._taken:
                self.skipped += 1
                return True
            return False

    def take(self, stamp_ns: int) -> None:
        with self._lock:
            if stamp_ns in self._taken:
                return
            self._taken.add(stamp_ns)
            self._order.append(stamp_ns)
            while len(self._order) > self._keep:
                self._taken.discard(self._order.popleft())

    def clear(self) -> None:
        with self._lock:
            self._order.clear()
            self._taken.clear()
