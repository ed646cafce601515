"""Which buffered frames the language model sees.

``uniform`` is Sa2VA-i's rule (its ``predict_forward``): ``numpy.linspace(0, T-1,
N, dtype=int)``. The cast truncates, frame 0 and frame T-1 are always in, and
when T < N the list holds duplicates (T=10, N=12 -> [0, 0, 1, ...]); Sa2VA-i
keeps them: duplicated frames are decoded twice and their masks re-applied.
``first`` is the original Sa2VA's rule: the first min(N, T) frames.
"""

from __future__ import annotations

import numpy as np

SAMPLING_MODES = ("uniform", "first")


def sample_indices(num_buffered: int, num_frames: int, mode: str = "uniform") -> list[int]:
    """Indices into a window of ``num_buffered`` frames, in temporal order."""
    if mode not in SAMPLING_MODES:
        raise ValueError(f"unknown sampling {mode!r}; expected one of {', '.join(SAMPLING_MODES)}")
    if num_buffered < 1:
        raise ValueError("no frames to sample from")
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if mode == "first":
        return list(range(min(num_frames, num_buffered)))
    return np.linspace(0, num_buffered - 1, num_frames, dtype=int).tolist()


def unique_in_order(indices: list[int]) -> list[int]:
    """The distinct sampled frames in temporal order: what the language model sees.

    Sa2VA-i builds its image list with ``frame_idx in sample_idx`` while walking
    the video, so each sampled frame appears once, in video order.
    """
    return sorted(set(indices))
