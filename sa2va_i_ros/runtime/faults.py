"""Fault containment: an unexpected exception ends only what it concerns, says why, and gives memory back.

Any exception in a request's phase (grounding, seeding, catch-up) ends that
request with a reply that says what failed, on which device and what to try;
a live-step fault for one object (``ObjectFault``, raised by the tracker's
per-object work) ends that object with STOPPED; a fault in the live step's
shared work (the image encoder, the batched decoder) skips that frame for every
object and tracking goes on with the next frame. Every fault drops the CUDA
cache (on CUDA only) and shows on /diagnostics through ``Health``: ERROR with
the reason until the next good step.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

OK, ERROR = "ok", "error"
LIVE_FAULTS_BEFORE_ENDING = 3  # shared live-step faults in a row before every track is ended


def device_of(session) -> str:
    """The device the session's models run on ("cpu" for stand-ins that name none: the simulation's
    asynchronous device stand-in is not a device a user could act on)."""
    for part in (getattr(session, "tracker", None), getattr(session, "engine", None)):
        device = getattr(part, "device", None)
        if isinstance(device, str) or type(device).__name__ == "device":  # a name or a torch.device
            return str(device)
    return "cpu"


def is_out_of_memory(exc: BaseException) -> bool:
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()


def describe(what: str, exc: BaseException, device: str) -> str:
    """A reply a user can act on: what failed, on which device, the error, what to try."""
    if is_out_of_memory(exc):
        hint = ("try fewer num_frames (or a lower max_num_frames), a smaller tracker_model (sam2.1_hiera_t), "
                "dtype float16, or fewer tracks")
    else:
        hint = "try again; if it repeats, try fewer num_frames, another tracker_model or dtype float32, and " \
               "report the error"
    return f"{what} failed on {device}: {type(exc).__name__}: {str(exc)[:300]}; {hint}"


def release(device: str) -> None:
    """Give the CUDA cache back after a fault (CUDA only; nothing on the CPU)."""
    if not device.startswith("cuda"):
        return
    try:
        import torch

        torch.cuda.empty_cache()
    except Exception:  # the release of a failed step must not fail in turn
        pass


@dataclass(frozen=True)
class Fault:
    when: float  # time.monotonic()
    phase: str  # grounding, seeding, catching_up, live, worker
    message: str
    track_ids: tuple[int, ...] = ()


class Health:
    """The worker's fault state for /diagnostics: ERROR with the newest fault's reason until a good step.

    The ERROR is latched until it has been read once (``snapshot``: the
    diagnostics timer) so that a fault followed at once by a good live step is
    still seen; the next good step after that read clears it. Written by the
    worker thread, read by the diagnostics timer: every access takes ``_lock``.
    ``recent`` keeps the last 20 faults.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.level = OK
        self.message = ""
        self.faults = 0
        self.recent: deque[Fault] = deque(maxlen=20)
        self.live_faults_in_row = 0
        self._read = True  # the current ERROR was reported

    def fault(self, phase: str, message: str, track_ids=()) -> None:
        with self._lock:
            self.level, self.message, self._read = ERROR, message, False
            self.faults += 1
            self.recent.append(Fault(time.monotonic(), phase, message, tuple(track_ids)))

    def good_step(self) -> None:
        with self._lock:
            if self._read:
                self.level, self.message = OK, ""

    def snapshot(self) -> dict:
        with self._lock:
            self._read = True
            return {"level": self.level, "message": self.message, "faults": self.faults,
                    "last_fault": self.recent[-1].message if self.recent else ""}
