"""An asynchronous accelerator stand-in: a call queues its cost and returns at once.

Like a CUDA stream, the device runs what was launched one call after another;
the simulated clock reaches the end of that work only when the host waits for
it: an explicit ``synchronize`` (what the worker does at step boundaries,
``runtime/device_time.py``) or a read-back of a result (``read``: ``.cpu()``,
``.item()``). A worker that forgot to synchronise would see its background
steps return at once and pay for them in the next live step's read-back, which
the simulation's bounds catch. ``asynchronous=False`` charges every call at
once (a CPU).
"""

from __future__ import annotations

from sa2va_i_ros.testing.simulation.clock import SimClock


class AsyncDevice:
    type = "sim"

    def __init__(self, clock: SimClock, asynchronous: bool = True):
        self.clock, self.asynchronous = clock, asynchronous
        self.busy_until = 0.0
        self.launched_s = 0.0  # device seconds launched so far
        self.syncs = 0

    def launch(self, seconds: float) -> None:
        """Queue ``seconds`` of device work (returns at once when asynchronous)."""
        self.launched_s += seconds
        if not self.asynchronous:
            self.clock.advance(seconds)
            return
        self.busy_until = max(self.busy_until, self.clock.now()) + seconds

    @property
    def pending_s(self) -> float:
        return max(0.0, self.busy_until - self.clock.now())

    def synchronize(self) -> None:
        """Wait for everything queued."""
        self.syncs += 1
        self.clock.advance_to(self.busy_until)

    def read(self, seconds: float = 0.0) -> None:
        """Launch ``seconds`` and read the result back (``.cpu()``, ``.item()``): waits for the queue."""
        self.launch(seconds)
        self.clock.advance_to(self.busy_until)
