"""Warm-up: one grounding and one tracking step on synthetic frames before the first query.

The first call of each path pays for lazy initialisation (kernel selection,
allocator growth, compilation with ``compile``), which otherwise lands on the
first user's query. ``warm_up`` runs the session's grounding engine once (the
request path's options, two frames) and the tracker's paths once (seeding a
prompt, stepping one and two objects) on frames of the camera's expected size.
Nothing the session holds changes: no buffered frame, no tracked object, no
track id. Called by the node at activate (parameter ``warm_up``) while the
worker is idle, before the camera subscription exists.
"""

from __future__ import annotations

import time

import numpy as np

from sa2va_i_ros.model.generation import drain
from sa2va_i_ros.runtime.session import SegmentRequest, Session

QUERY = "the object in the middle"


def synthetic_frames(size: tuple[int, int], n: int = 2) -> list[np.ndarray]:
    """``n`` frames of (h, w) ``size``: a grey background with a bright square that moves a little."""
    h, w = size
    frames = []
    for k in range(n):
        rgb = np.full((h, w, 3), 96, np.uint8)
        y, x = h // 3 + k, w // 3 + k
        rgb[y: y + h // 3, x: x + w // 3] = (220, 60, 40)
        frames.append(rgb)
    return frames


def warm_up(session: Session, size: tuple[int, int] = (480, 640)) -> dict[str, float]:
    """One grounding and the tracker's paths at ``size`` (the stored size: after ``buffer_downscale``);
    returns the seconds each took."""
    size = session.buffer.stored_size(*size)
    frames = synthetic_frames(size)
    options, _ = session.check_request(SegmentRequest(QUERY, num_frames=len(frames)), tracks={})
    t0 = time.perf_counter()
    drain(session.engine.ground_steps(frames, QUERY, options))
    t1 = time.perf_counter()
    tracker_warm_up = getattr(session.tracker, "warm_up", None)  # stand-ins have none
    if tracker_warm_up is not None:
        tracker_warm_up(size, objects=2)
    return {"grounding_s": t1 - t0, "tracking_s": time.perf_counter() - t1}
