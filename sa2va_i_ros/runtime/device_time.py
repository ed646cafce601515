"""Device time: the worker synchronises the accelerator at step boundaries, so every step is charged what it ran.

On CUDA a call returns once its kernels are queued; without a synchronisation a
background step would look free, several would share one turn and the next
live step's read-back would wait behind all of them (the cost model and the
output-gap bound would be wrong). ``DeviceTime.sync`` is called after every
unit of work and before a measured step ends: ``torch.cuda.synchronize`` on
the CUDA devices of the engine and the tracker, nothing on a CPU (its calls
are synchronous already). A stand-in device (the simulation) brings its own
``synchronize``. The synchronisations' own cost is measured (``total_s``,
``count``; the worker reports ``device_sync_ms``).
"""

from __future__ import annotations

from collections.abc import Callable

from sa2va_i_ros.runtime.clock import Clock


def synchronizer(*devices) -> Callable[[], None] | None:
    """One callable that synchronises every accelerator among ``devices`` (None when none needs it)."""
    calls, seen = [], set()
    for device in devices:
        own = getattr(device, "synchronize", None)
        if callable(own):  # a stand-in device
            if id(device) not in seen:
                seen.add(id(device))
                calls.append(own)
            continue
        kind = device.split(":")[0] if isinstance(device, str) else getattr(device, "type", None)
        if kind == "cuda" and str(device) not in seen:
            import torch

            seen.add(str(device))
            calls.append(lambda d=device: torch.cuda.synchronize(d))
    if not calls:
        return None
    if len(calls) == 1:
        return calls[0]

    def every() -> None:
        for call in calls:
            call()
    return every


def session_devices(session) -> tuple:
    """The devices a session's engine and tracker run on (as far as they say)."""
    tracker = session.tracker
    runner = getattr(tracker, "runner", None)
    return (getattr(session.engine, "device", None), getattr(tracker, "device", None),
            getattr(runner, "device", None))


class DeviceTime:
    def __init__(self, sync: Callable[[], None] | None, clock: Clock):
        self._sync, self.clock = sync, clock
        self.total_s, self.count = 0.0, 0

    @property
    def synchronizes(self) -> bool:
        return self._sync is not None

    def sync(self) -> None:
        """Wait until the device finished what was queued (no-op on a CPU); its time is counted."""
        if self._sync is None:
            return
        t0 = self.clock.now()
        self._sync()
        self.total_s += self.clock.now() - t0
        self.count += 1
