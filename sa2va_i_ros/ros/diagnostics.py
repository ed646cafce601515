"""/diagnostics for the segment node: rates, stamp lag, model state, per-track presence.

``diagnostic_updater`` is not available from PyPI, so the node builds the
``DiagnosticArray`` itself from these small pieces; ``node_statuses`` assembles
what the node reports from its readings, the worker's and the frame publisher's.
"""

from __future__ import annotations

import time
from collections import deque

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from sa2va_i_ros.ros.conversions import stamp_to_ns

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


class RateMeter:
    """Events per second over the last ``window`` seconds (monotonic clock)."""

    def __init__(self, window: float = 5.0):
        self.window = window
        self._times: deque[float] = deque()

    def tick(self, now: float | None = None) -> None:
        self._times.append(time.monotonic() if now is None else now)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()
        return len(self._times) / self.window


class Percentiles:
    """p50/p95 of the last ``n`` values (a cheap sliding window)."""

    def __init__(self, n: int = 200):
        self._values: deque[float] = deque(maxlen=n)

    def add(self, value: float) -> None:
        self._values.append(value)

    def get(self, q: float) -> float:
        if not self._values:
            return float("nan")
        ordered = sorted(self._values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def status(name: str, level: int, message: str, values: dict) -> DiagnosticStatus:
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id="sa2va_i_ros",
                            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])


def node_statuses(name: str, worker, *, model_state: str, active: bool, in_rate: float, input_counts: dict,
                  images_received: int, frames, newest_in: tuple[int, float] | None = None,
                  now: float | None = None) -> list[DiagnosticStatus]:
    """The model, input, output and worker statuses, then one per track (``worker`` None: not configured).

    ``frames`` is the node's ``FramePublisher``: output rate, newest output,
    per-frame overhead on the worker's path (image callback and hand-over),
    the publisher thread's cost per frame (``publish_ms``) and what it published. ``newest_in`` is the newest
    frame the image callback handed to the worker, ``(stamp_ns, monotonic
    time)``, recorded by the callback itself so that it advances while the
    worker is inside a long step. Lags are measured in the camera's stamps
    (``stamp_lag_ms``: newest frame received minus newest frame published, so
    a bag recorded long ago reads the same as a live camera); wall-clock ages
    since the newest frame received and the newest output published are
    reported apart (``input_age_ms``, ``output_age_ms``). The worker status is ERROR with the reason of a
    contained fault (a request or a track ended by an exception, e.g. out of memory) until the worker's next
    good step.
    """
    now = time.monotonic() if now is None else now
    out_rate = frames.rate.rate()
    counts = worker.counts_now() if worker is not None else {}
    done = settled(worker, frames, newest_in)
    newest_ns, last_out_ns = done["newest_stamp_ns"], done["last_output_stamp_ns"]
    lag = (newest_ns - last_out_ns) / 1e6 if newest_ns >= 0 and last_out_ns >= 0 else float("nan")
    in_age = (now - newest_in[1]) * 1e3 if newest_in is not None else float("nan")
    out_at = getattr(frames, "last_output_at", None)
    out_age = (now - out_at) * 1e3 if out_at is not None else float("nan")
    statuses = [
        status(f"{name}: model", ERROR if "failed" in model_state else (OK if worker else WARN), model_state,
               {"active": active}),
        status(f"{name}: input", OK if in_rate > 0 or not active else WARN, f"{in_rate:.1f} frames/s",
               {"rate_hz": f"{in_rate:.2f}", "input_age_ms": f"{in_age:.1f}", **input_counts,
                **({"buffered": len(worker.session.buffer)} if worker else {})}),
        status(f"{name}: output", OK, f"{out_rate:.1f} frames/s",
               {"rate_hz": f"{out_rate:.2f}", "stamp_lag_ms": f"{lag:.1f}", "output_age_ms": f"{out_age:.1f}",
                "overhead_ms_p50": f"{frames.overhead_ms.get(0.5):.3f}",
                "overhead_ms_p95": f"{frames.overhead_ms.get(0.95):.3f}",
                "publish_ms_p50": f"{frames.publish_ms.get(0.5):.3f}",
                "publish_ms_p95": f"{frames.publish_ms.get(0.95):.3f}",
                "grounding_running": worker.busy if worker else False,
                "requests_waiting": worker.queue_length() if worker else 0,
                "images_received": images_received, **done, **counts}),
    ]
    budget = getattr(worker, "budget", None)  # (expected join s, max_catch_up_sec) of the last seeding
    if budget is not None:
        over = budget[0] > budget[1]
        statuses.append(status(f"{name}: catch-up", WARN if over else OK,
                               f"max_catch_up_sec {budget[1]:g} s cannot be met: expected join in {budget[0]:.2f} s"
                               if over else "within max_catch_up_sec",
                               {"expected_join_s": f"{budget[0]:.3f}", "max_catch_up_sec": f"{budget[1]:g}"}))
    if worker is not None:
        statuses.append(worker_status(name, worker.health.snapshot()))
        for track_id, query in worker.tracks.items():
            visible = worker.is_visible(track_id)
            attempts = worker.regrounder.plan.attempts(track_id)
            statuses.append(status(f"{name}: track {track_id}", OK if visible else WARN,
                                   "visible" if visible else "lost", {"query": query, "reground_misses": attempts}))
    return statuses


def worker_status(name: str, health: dict) -> DiagnosticStatus:
    """ERROR with the newest fault's reason until the next good step; OK otherwise (faults counted)."""
    failing = health["level"] == "error"
    return status(f"{name}: worker", ERROR if failing else OK, health["message"] if failing else "no fault",
                  {"faults": health["faults"], "last_fault": health["last_fault"]})


def settled(worker, frames, newest_in: tuple[int, float] | None = None) -> dict:
    """How far the node got: the newest frame handed to the worker (by the image callback: ``newest_in``;
    else the newest the worker took), whether the worker is done with it (idle), outputs still waiting for
    depth, and the newest objects message published. Read in this order, ``worker_idle`` true means every
    frame up to ``newest_stamp_ns`` is out, pending or dropped."""
    if newest_in is not None:
        newest_ns = newest_in[0]
    else:
        newest = worker.newest_header if worker is not None else None
        newest_ns = stamp_to_ns(newest.stamp) if newest is not None else -1
    idle = worker.idle if worker is not None else False
    return {"newest_stamp_ns": newest_ns, "worker_idle": idle, **frames.published()}


def diagnostic_array(stamp, statuses: list[DiagnosticStatus]) -> DiagnosticArray:
    return DiagnosticArray(header=_header(stamp), status=statuses)


def _header(stamp):
    from std_msgs.msg import Header

    return Header(stamp=stamp)
