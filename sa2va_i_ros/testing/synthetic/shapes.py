"""Ray intersection of the scene's primitives, vectorised over all pixels of a frame.

World frame: z up, the table top is the plane z = 0. Every ``hit`` takes one ray
origin ``o`` (3,) and directions ``d`` (N, 3) and returns ``(t, n)``: the ray
parameter of the nearest visible surface (``inf`` where the ray misses) and the
unit normal there (facing the ray). The directions are not normalised: the
camera passes rays with a camera-frame z of 1, so ``t`` is directly the depth.
Objects also give a bounding sphere, so that the renderer casts each object's
rays only where it can appear (a few percent of the frame).
Open containers (cup, bowl) show their inside through the opening, so a
segmenter sees a real cup and not a painted cylinder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EPS = 1e-9


def _plane_z(o: np.ndarray, d: np.ndarray, z: float) -> np.ndarray:
    """Ray parameter where each ray meets the horizontal plane at height z (inf if never, or behind)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (z - o[2]) / d[:, 2]
    return np.where(np.isfinite(t) & (t > _EPS), t, np.inf)


def _pick(t_a, n_a, t_b, n_b):
    """Per ray, the nearer of two candidate hits."""
    take_b = t_b < t_a
    return np.where(take_b, t_b, t_a), np.where(take_b[:, None], n_b, n_a)


def may_hit(o: np.ndarray, d: np.ndarray, dd: np.ndarray, bound: tuple[np.ndarray, float]) -> np.ndarray:
    """Indices of the rays that enter a bounding sphere lying ahead of ``o`` (outside it).

    ``dd`` is the squared length of each ray, computed once per camera.
    """
    centre, radius = bound
    oc = o - centre
    b = d @ oc
    return np.flatnonzero((b * b - dd * (oc @ oc - radius * radius) >= 0.0) & (b < 0.0))


def _up(n: int) -> np.ndarray:
    return np.broadcast_to(np.array([0.0, 0.0, 1.0]), (n, 3))


@dataclass(frozen=True)
class Table:
    """A finite horizontal rectangle at height z (the table top, or the floor when unbounded)."""

    z: float = 0.0
    xlim: tuple[float, float] = (-np.inf, np.inf)
    ylim: tuple[float, float] = (-np.inf, np.inf)

    def hit(self, o, d):
        t = _plane_z(o, d, self.z)
        with np.errstate(invalid="ignore"):
            p = o + np.where(np.isfinite(t), t, 0.0)[:, None] * d
        inside = (p[:, 0] >= self.xlim[0]) & (p[:, 0] <= self.xlim[1])
        inside &= (p[:, 1] >= self.ylim[0]) & (p[:, 1] <= self.ylim[1])
        return np.where(inside, t, np.inf), _up(len(d))


@dataclass(frozen=True)
class Box:
    """Axis-aligned box between corners lo and hi (slab method)."""

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]

    @property
    def bound(self) -> tuple[np.ndarray, float]:
        lo, hi = np.asarray(self.lo), np.asarray(self.hi)
        return (lo + hi) / 2.0, float(np.linalg.norm(hi - lo)) / 2.0

    def hit(self, o, d):
        lo, hi = np.asarray(self.lo), np.asarray(self.hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            t1, t2 = (lo - o) / d, (hi - o) / d
        near = np.nan_to_num(np.minimum(t1, t2), nan=-np.inf)
        far = np.nan_to_num(np.maximum(t1, t2), nan=np.inf)
        t_in, t_out = near.max(axis=1), far.min(axis=1)
        t = np.where((t_in <= t_out) & (t_in > _EPS), t_in, np.inf)
        axis = near.argmax(axis=1)
        n = np.zeros_like(d)
        rows = np.arange(len(d))
        n[rows, axis] = -np.sign(d[rows, axis])
        return t, n


@dataclass(frozen=True)
class Cup:
    """Vertical open-topped cylinder standing on the table: outer wall, rim opening, inner wall and floor."""

    x: float
    y: float
    radius: float
    height: float
    floor: float = 0.01  # thickness of the bottom: the inner floor is this high above the table

    @property
    def bound(self) -> tuple[np.ndarray, float]:
        return np.array([self.x, self.y, self.height / 2.0]), float(np.hypot(self.radius, self.height / 2.0))

    def _sides(self, o, d):
        px, py = o[0] - self.x, o[1] - self.y
        a = d[:, 0] ** 2 + d[:, 1] ** 2
        b = 2.0 * (px * d[:, 0] + py * d[:, 1])
        c = px * px + py * py - self.radius**2
        disc = b * b - 4.0 * a * c
        root = np.sqrt(np.maximum(disc, 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            t_near, t_far = (-b - root) / (2.0 * a), (-b + root) / (2.0 * a)
        missed = (disc < 0) | (a < _EPS)
        return np.where(missed, np.inf, t_near), np.where(missed, np.inf, t_far)

    def _radial(self, o, d, t):
        p = o + np.where(np.isfinite(t), t, 0.0)[:, None] * d
        n = np.stack([p[:, 0] - self.x, p[:, 1] - self.y, np.zeros(len(d))], axis=1) / self.radius
        return p, n

    def hit(self, o, d):
        t_near, t_far = self._sides(o, d)
        p, n_out = self._radial(o, d, t_near)
        outer = np.isfinite(t_near) & (t_near > _EPS) & (p[:, 2] >= 0.0) & (p[:, 2] <= self.height)
        t, n = np.where(outer, t_near, np.inf), n_out
        # Through the opening: inside the rim circle at the rim height, then the inner wall or the floor.
        t_rim = _plane_z(o, d, self.height)
        q = o + np.where(np.isfinite(t_rim), t_rim, 0.0)[:, None] * d
        opening = np.isfinite(t_rim) & ((q[:, 0] - self.x) ** 2 + (q[:, 1] - self.y) ** 2 <= self.radius**2)
        p_far, n_far = self._radial(o, d, t_far)
        wall = opening & (p_far[:, 2] >= self.floor)
        t_floor = _plane_z(o, d, self.floor)
        t_in = np.where(wall, t_far, np.where(opening, t_floor, np.inf))
        n_in = np.where(wall[:, None], -n_far, _up(len(d)))
        return _pick(t, n, t_in, n_in)


@dataclass(frozen=True)
class Bowl:
    """Lower part of a sphere (centre at height zc) cut at the rim height, open on top, on the table."""

    x: float
    y: float
    radius: float
    zc: float
    rim: float
    floor: float = 0.01

    @property
    def bound(self) -> tuple[np.ndarray, float]:
        return np.array([self.x, self.y, self.zc]), self.radius

    def hit(self, o, d):
        c = np.array([self.x, self.y, self.zc])
        oc = o - c
        a = np.einsum("ij,ij->i", d, d)
        b = 2.0 * d @ oc
        disc = b * b - 4.0 * a * (oc @ oc - self.radius**2)
        root = np.sqrt(np.maximum(disc, 0.0))
        t_near = np.where(disc >= 0, (-b - root) / (2.0 * a), np.inf)
        t_far = np.where(disc >= 0, (-b + root) / (2.0 * a), np.inf)
        p = o + np.where(np.isfinite(t_near), t_near, 0.0)[:, None] * d
        outer = np.isfinite(t_near) & (t_near > _EPS) & (p[:, 2] >= 0.0) & (p[:, 2] <= self.rim)
        t, n = np.where(outer, t_near, np.inf), (p - c) / self.radius
        t_rim = _plane_z(o, d, self.rim)
        q = o + np.where(np.isfinite(t_rim), t_rim, 0.0)[:, None] * d
        opening = np.isfinite(t_rim) & (np.sum((q - c) ** 2, axis=1) <= self.radius**2)
        p_far = o + np.where(np.isfinite(t_far), t_far, 0.0)[:, None] * d
        wall = opening & (p_far[:, 2] >= self.floor)
        t_in = np.where(wall, t_far, np.where(opening, _plane_z(o, d, self.floor), np.inf))
        n_in = np.where(wall[:, None], (c - p_far) / self.radius, _up(len(d)))
        return _pick(t, n, t_in, n_in)
