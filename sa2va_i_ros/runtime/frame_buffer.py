"""Ring buffer of the newest camera frames, the video the grounding model looks back on.

Bounded three ways, so memory stays bounded whatever the camera does: by frame
count, by seconds of header stamp before the newest frame, and by bytes of
stored pixels. Each push costs O(1) (a deque, oldest frames dropped on the left)
plus one copy of the frame: decoded messages are views over buffers that rclpy
reuses, so the buffer owns a read-only copy of every frame it keeps. That copy
costs about 23 µs for rgb8 and 0.26 ms for bgr8 at 640x480 (docs/DECISIONS.md).

The image callback pushes and a worker thread reads ``window()`` snapshots; a
lock inside (held during the copy, so a reader waits at most one copy) makes
that safe. A snapshot is a tuple of frozen ``Frame`` entries whose arrays are
never written again, so it stays valid while the buffer rotates.

Policies, counted in ``stats()`` and explained in the returned ``Push`` (the
node logs it, the core does not):

* a stamp older than the newest frame's is rejected (``out_of_order``); a clock
  that jumps back (a bag played in a loop) keeps being rejected until the node
  calls ``clear()``;
* a stamp equal to the newest frame's is rejected (``duplicate``);
* a frame of another size than the newest clears the older frames
  (``size_change``): the model needs one size per window;
* a frame larger than ``max_bytes`` on its own is rejected (``too_large``).
"""

from __future__ import annotations

import dataclasses
import operator
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from PIL import Image


@dataclass(frozen=True, slots=True)
class Frame:
    """One buffered frame; ``rgb`` is read-only and owned by the buffer."""

    header: Any  # the message header, opaque here; outputs copy it unchanged
    stamp_ns: int
    rgb: np.ndarray  # (h, w, 3) uint8, downscaled when the buffer has ``downscale``
    size: tuple[int, int]  # (height, width) of the camera frame, to scale masks back

    @property
    def nbytes(self) -> int:
        return self.rgb.nbytes


class Push(NamedTuple):
    """What a push did: ``code`` is ok, size_change, out_of_order, duplicate or too_large."""

    accepted: bool
    code: str
    reason: str  # a sentence for the log; empty for a plain "ok"
    dropped: int  # frames this push removed (evicted by the bounds or cleared)


@dataclass
class BufferStats:
    accepted: int = 0
    out_of_order: int = 0
    duplicate: int = 0
    too_large: int = 0
    size_changes: int = 0
    evicted_by_count: int = 0
    evicted_by_age: int = 0
    evicted_by_bytes: int = 0
    cleared: int = 0  # frames dropped by size changes and clear()


def check_rgb(rgb) -> None:
    """ValueError unless ``rgb`` is a non-empty (H, W, 3) uint8 array."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 \
            or rgb.shape[2] != 3 or 0 in rgb.shape:
        got = getattr(rgb, "shape", type(rgb).__name__)
        raise ValueError(f"frames must be non-empty (H, W, 3) uint8 arrays, got {got}")


def copy_rgb(rgb: np.ndarray) -> np.ndarray:
    """C-contiguous copy of an (H, W, 3) view.

    Rows of packed RGB are copied whole; other views (BGR reversed, alpha sliced,
    mono broadcast) one channel plane at a time, about 5x faster than numpy's
    generic copy of those strides (0.25 ms instead of 1.3 ms at 640x480).
    """
    if rgb.strides[1:] == (3, 1):
        return np.array(rgb, order="C")
    out = np.empty(rgb.shape, np.uint8)
    for c in range(3):
        out[:, :, c] = rgb[:, :, c]
    return out


class FrameBuffer:
    """Thread-safe bounded buffer of ``Frame`` entries in increasing stamp order."""

    def __init__(self, max_frames: int = 64, max_seconds: float = 10.0, max_bytes: int = 256 << 20,
                 downscale: int | None = None):
        """``downscale``: longest side, in pixels, of the stored copy (None keeps full frames).

        Downscaling uses Pillow's BOX filter (area average, no aliasing; 3.5 ms for
        1280x720 -> 448x252) and keeps the aspect ratio; ``Frame.size`` keeps the
        camera size for output scaling.
        """
        if max_frames < 1 or max_bytes < 1 or not max_seconds > 0:
            raise ValueError("max_frames, max_seconds and max_bytes must all be > 0")
        if downscale is not None and downscale < 1:
            raise ValueError(f"downscale must be None or a side length >= 1, got {downscale}")
        self.max_frames = int(max_frames)
        self.max_ns = round(max_seconds * 1e9)
        self.max_bytes = int(max_bytes)
        self.downscale = downscale
        self._frames: deque[Frame] = deque()
        self._bytes = 0
        self._stats = BufferStats()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def nbytes(self) -> int:
        """Bytes of pixels held now (always <= max_bytes)."""
        return self._bytes

    def stats(self) -> BufferStats:
        with self._lock:
            return dataclasses.replace(self._stats)

    def stored_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) a camera frame of (height, width) is stored at."""
        side = max(height, width)
        if self.downscale is None or side <= self.downscale:
            return height, width
        return max(1, round(height * self.downscale / side)), max(1, round(width * self.downscale / side))

    def _own_copy(self, rgb: np.ndarray) -> np.ndarray:
        h, w = self.stored_size(*rgb.shape[:2])
        if (h, w) != rgb.shape[:2]:
            src = rgb if rgb.flags.c_contiguous else copy_rgb(rgb)
            out = np.array(Image.fromarray(src).resize((w, h), Image.BOX))
        else:
            out = copy_rgb(rgb)
        out.flags.writeable = False
        return out

    def push(self, header: Any, stamp_ns: int, rgb: np.ndarray) -> Push:
        """Store a copy of ``rgb`` (any (H, W, 3) uint8 array or view) under its header stamp."""
        check_rgb(rgb)
        stamp = operator.index(stamp_ns)
        size = (int(rgb.shape[0]), int(rgb.shape[1]))
        with self._lock:
            frames, st = self._frames, self._stats
            if frames and stamp <= frames[-1].stamp_ns:
                newest = frames[-1].stamp_ns
                if stamp == newest:
                    st.duplicate += 1
                    return Push(False, "duplicate", f"duplicate stamp {stamp} ns", 0)
                st.out_of_order += 1
                why = f"stamp {stamp} ns is {(newest - stamp) / 1e6:.1f} ms older than the newest frame"
                return Push(False, "out_of_order", why, 0)
            h, w = self.stored_size(*size)
            if h * w * 3 > self.max_bytes:
                st.too_large += 1
                return Push(False, "too_large", f"one {w}x{h} frame exceeds max_bytes={self.max_bytes}", 0)
            code, reason, dropped = "ok", "", 0
            if frames and frames[-1].size != size:
                old = frames[-1].size
                dropped = len(frames)
                self._drop_all()
                st.size_changes += 1
                st.cleared += dropped
                code = "size_change"
                reason = (f"frame size changed from {old[1]}x{old[0]} to {size[1]}x{size[0]}; "
                          f"dropped {dropped} older frames")
            frame = Frame(header, stamp, self._own_copy(rgb), size)
            frames.append(frame)
            self._bytes += frame.nbytes
            st.accepted += 1
            return Push(True, code, reason, dropped + self._evict())

    def _evict(self) -> int:
        frames, st, n = self._frames, self._stats, 0
        newest = frames[-1].stamp_ns
        while len(frames) > 1:
            if len(frames) > self.max_frames:
                st.evicted_by_count += 1
            elif newest - frames[0].stamp_ns > self.max_ns:
                st.evicted_by_age += 1
            elif self._bytes > self.max_bytes:
                st.evicted_by_bytes += 1
            else:
                break
            self._bytes -= frames.popleft().nbytes
            n += 1
        return n

    def _drop_all(self) -> None:
        self._frames.clear()
        self._bytes = 0

    def clear(self) -> int:
        """Drop every frame (e.g. on a clock jump back); returns how many were dropped."""
        with self._lock:
            n = len(self._frames)
            self._drop_all()
            self._stats.cleared += n
            return n

    def window(self, seconds: float = 0.0) -> tuple[Frame, ...]:
        """Snapshot of the frames stamped within ``seconds`` of the newest (0 = all), oldest first."""
        if not seconds >= 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        with self._lock:
            if not seconds or not self._frames:
                return tuple(self._frames)
            oldest = self._frames[-1].stamp_ns - round(seconds * 1e9)
            out = []
            for frame in reversed(self._frames):
                if frame.stamp_ns < oldest:
                    break
                out.append(frame)
        return tuple(reversed(out))

    def latest(self) -> Frame | None:
        with self._lock:
            return self._frames[-1] if self._frames else None
