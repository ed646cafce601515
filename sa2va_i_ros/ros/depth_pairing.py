"""Pair each tracked frame with the depth image of (nearly) the same stamp.

Color and aligned depth arrive on two topics, in either order. A frame's output
waits at most ``wait_s`` (wall time) for a depth within ``tolerance_ns`` of its
stamp; then it goes out with its depth, or without (3D fields NaN). Outputs
always leave in stamp order, so a consumer never sees frames reordered.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any


class DepthPairer:
    def __init__(self, tolerance_ns: int = 20_000_000, wait_s: float = 0.1, keep: int = 30):
        self.tolerance_ns, self.wait_s = tolerance_ns, wait_s
        self._depth: deque[tuple[int, Any]] = deque(maxlen=keep)
        self._pending: deque[tuple[int, float, Any]] = deque()  # (stamp_ns, arrival, item), stamp order

    def _match(self, stamp_ns: int) -> Any | None:
        best = min(self._depth, key=lambda sd: abs(sd[0] - stamp_ns), default=None)
        return best[1] if best is not None and abs(best[0] - stamp_ns) <= self.tolerance_ns else None

    def add_depth(self, stamp_ns: int, depth: Any) -> list[tuple[Any, Any]]:
        """Store a depth image; returns the outputs it completes (and older ones still waiting)."""
        self._depth.append((stamp_ns, depth))
        return self._release(lambda s: self._match(s) is not None)

    def add_output(self, stamp_ns: int, item: Any, now: float | None = None) -> list[tuple[Any, Any]]:
        """Queue a frame's output; returns (item, depth or None) pairs ready to publish, in stamp order."""
        self._pending.append((stamp_ns, time.monotonic() if now is None else now, item))
        return self._release(lambda s: self._match(s) is not None)

    def expire(self, now: float | None = None) -> list[tuple[Any, Any]]:
        """Release outputs that waited longer than ``wait_s`` (without depth when none came)."""
        now = time.monotonic() if now is None else now
        deadline = {s for s, t, _ in self._pending if now - t >= self.wait_s}
        return self._release(lambda s: s in deadline)

    def flush(self) -> list[tuple[Any, Any]]:
        return self._release(lambda s: True)

    def _release(self, ready) -> list[tuple[Any, Any]]:
        """Pop from the front up to the newest ready output; older ones go out with what they have."""
        last = max((k for k, (s, _, _) in enumerate(self._pending) if ready(s)), default=-1)
        out = []
        for _ in range(last + 1):
            stamp, _, item = self._pending.popleft()
            out.append((item, self._match(stamp)))
        return out

    def __len__(self) -> int:
        """Outputs still waiting for their depth."""
        return len(self._pending)

    def clear(self) -> None:
        self._depth.clear()
        self._pending.clear()
