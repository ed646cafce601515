"""Synthetic camera frames shared by the session and node tests: a red box moving over noise, 10 Hz stamps."""

import numpy as np

NS = 1_000_000_000
SIZE = (96, 128)


def frame_rgb(i: int, size=SIZE) -> np.ndarray:
    rng = np.random.default_rng(i)
    f = rng.integers(0, 60, (*size, 3), dtype=np.uint8)
    x = 10 + 3 * (i % 20)
    f[20:60, x:x + 40] = (220, 40, 40)
    return f


def stamp_ns(i: int) -> int:
    return 100 * NS + i * 100_000_000
