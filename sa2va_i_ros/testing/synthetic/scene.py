"""A deterministic tabletop recording: what a referring segmenter and its tracker must survive.

The table holds a red cup LEFT of a blue bowl, a second (green) cup right of
the bowl, so that "the cup left of the bowl" is a real referring expression,
a yellow box and a purple can. Over the clip, at fixed fractions of its length
(so the story happens at any frame count): a hand-like box passes in front of
the red cup and hides it completely for a few frames, then the camera pans
right until the red cup has left the view, and pans back so that it re-enters.

Every frame is ray cast in numpy (one vectorised pass per object) and is a
pure function of the spec and its index: byte-identical for the same seed,
whatever order or subset of frames is generated.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sa2va_i_ros.testing.synthetic.camera import PinholeCamera
from sa2va_i_ros.testing.synthetic.shapes import Bowl, Box, Cup, Table, may_hit
from sa2va_i_ros.testing.synthetic.views import VIEWS, pulse, view

NS_PER_S = 1_000_000_000
FRAME_ID = VIEWS["head"].frame_id  # the head camera's, as the single-camera recording has always had
VIDEO = "tabletop"

# id -> (name, rgb colour); 0 is the background (table, floor, nothing).
OBJECTS: dict[int, tuple[str, tuple[int, int, int]]] = {
    1: ("cup_left", (200, 45, 40)),
    2: ("bowl", (70, 120, 215)),
    3: ("cup_right", (60, 165, 80)),
    4: ("box", (230, 200, 50)),
    5: ("can", (135, 70, 165)),
    6: ("hand", (225, 175, 140)),
}
EXPRESSIONS: list[tuple[str, int]] = [
    ("the cup left of the bowl", 1),
    ("the bowl", 2),
    ("the cup right of the bowl", 3),
    ("the yellow box", 4),
    ("the purple can", 5),
]
HAND_ID = 6
SHAPES = {  # the static objects; the hand moves (hand_box)
    1: Cup(x=-0.20, y=0.55, radius=0.035, height=0.10),
    2: Bowl(x=0.0, y=0.58, radius=0.085, zc=0.085, rim=0.065),
    3: Cup(x=0.22, y=0.52, radius=0.035, height=0.10),
    4: Box(lo=(0.06, 0.78, 0.0), hi=(0.18, 0.88, 0.07)),
    5: Cup(x=-0.38, y=0.86, radius=0.03, height=0.14),
}
_TABLE = Table(z=0.0, xlim=(-0.9, 1.5), ylim=(0.05, 1.3))
_FLOOR = Table(z=-0.75)
_TABLE_RGB, _FLOOR_RGB, _SKY_RGB = (160, 115, 75), (70, 70, 76), (190, 195, 202)
_LIGHT = np.array([-0.35, -0.45, 0.82]) / np.linalg.norm([-0.35, -0.45, 0.82])


@dataclass(frozen=True)
class SceneSpec:
    """Options of a recording; every frame is a pure function of these and its index."""

    width: int = 320
    height: int = 240
    frames: int = 90
    fps: float = 15.0
    seed: int = 0
    hfov_deg: float = 60.0
    start_ns: int = 1_700_000_000 * NS_PER_S
    max_range_m: float = 2.5  # depth beyond this is 0 (no return), like a real RGB-D camera
    noise_sigma: float = 2.0  # seeded Gaussian noise on the colour image, in grey levels
    view: str = "head"  # which camera renders it (views.VIEWS: head, wrist)

    def __post_init__(self):
        if self.width < 16 or self.height < 16 or self.frames < 1 or self.fps <= 0:
            raise ValueError(f"need size >= 16x16, frames >= 1 and fps > 0; got {self.width}x{self.height}, "
                             f"{self.frames} frames, {self.fps} fps")
        view(self.view)  # an unknown view fails here, before any frame is rendered

    @property
    def camera(self) -> PinholeCamera:
        return PinholeCamera(self.width, self.height, self.hfov_deg)

    def stamp_ns(self, k: int) -> int:
        return self.start_ns + round(k * NS_PER_S / self.fps)


@dataclass(frozen=True)
class Frame:
    """One rendered frame: colour, aligned depth, instance ids and the camera pose that made them."""

    index: int
    stamp_ns: int
    rgb: np.ndarray  # (H, W, 3) uint8
    depth_mm: np.ndarray  # (H, W) uint16 millimetres, 0 = no return
    ids: np.ndarray  # (H, W) uint8 object id, 0 = background
    world_from_camera: np.ndarray  # (4, 4) float64
    frame_id: str = FRAME_ID  # the optical frame of the camera that rendered it

    def mask(self, obj_id: int) -> np.ndarray:
        return self.ids == obj_id


def hand_box(s: float) -> Box:
    """The occluder: reaches in from the left, rests between the camera and the red cup, withdraws."""
    x = -0.75 + 0.61 * pulse(s, (0.06, 0.16), (0.28, 0.38))
    return Box(lo=(x - 0.07, 0.24, 0.10), hi=(x + 0.07, 0.34, 0.32))


def _shade(base: np.ndarray, normal: np.ndarray) -> np.ndarray:
    lambert = np.clip(normal @ _LIGHT, 0.0, 1.0)
    return base * (0.4 + 0.6 * lambert)[:, None]


def _table_texture(points: np.ndarray) -> np.ndarray:
    """Wood-like grain fixed to the table, so image motion follows the camera as on a real table."""
    x, y = points[:, 0], points[:, 1]
    grain = np.sin(45.0 * x + 4.0 * np.sin(6.0 * y)) * 0.06 + np.sin(130.0 * x + 9.0 * y) * 0.025
    return 1.0 + grain


@functools.lru_cache(maxsize=4)
def _rays(camera: PinholeCamera) -> tuple[np.ndarray, np.ndarray]:
    rays = camera.rays()
    return rays, np.einsum("ij,ij->i", rays, rays)  # world rotations keep the squared lengths


def render(spec: SceneSpec, k: int) -> Frame:
    """Frame k of the recording (pure function of spec and k)."""
    s = k / (spec.frames - 1) if spec.frames > 1 else 0.0
    cam = view(spec.view)
    pose = cam.pose(s)
    rays, dd = _rays(spec.camera)
    eye, d = pose[:3, 3], rays @ np.ascontiguousarray(pose[:3, :3].T)  # a transposed operand is 10x slower
    t_best, normal = _FLOOR.hit(eye, d)
    normal = normal.copy()
    ids = np.zeros(len(d), np.uint8)
    colour = np.where(np.isfinite(t_best)[:, None], np.array(_FLOOR_RGB, float), np.array(_SKY_RGB, float))
    t, _ = _TABLE.hit(eye, d)
    on_table = t < t_best
    t_best[on_table], normal[on_table], colour[on_table] = t[on_table], (0.0, 0.0, 1.0), _TABLE_RGB
    for obj_id, shape in [*SHAPES.items(), (HAND_ID, hand_box(s))]:
        idx = may_hit(eye, d, dd, shape.bound)
        t, n = shape.hit(eye, d[idx])
        nearer = t < t_best[idx]
        px = idx[nearer]
        t_best[px], normal[px], ids[px], colour[px] = t[nearer], n[nearer], obj_id, OBJECTS[obj_id][1]
    hit = np.isfinite(t_best)
    colour[hit] = _shade(colour[hit], normal[hit])
    table_px = np.flatnonzero(on_table & (ids == 0))
    colour[table_px] *= _table_texture(eye + t_best[table_px, None] * d[table_px])[:, None]
    rng = np.random.default_rng([spec.seed, k])
    colour += rng.normal(0.0, spec.noise_sigma, colour.shape)
    shape2d = (spec.height, spec.width)
    rgb = np.clip(np.rint(colour), 0, 255).astype(np.uint8).reshape(*shape2d, 3)
    in_range = hit & (t_best <= spec.max_range_m)
    depth = np.zeros(len(d), np.uint16)
    depth[in_range] = np.rint(t_best[in_range] * 1000.0)
    return Frame(k, spec.stamp_ns(k), rgb, depth.reshape(shape2d), ids.reshape(shape2d), pose, cam.frame_id)


def generate_frames(spec: SceneSpec | None = None) -> Iterator[Frame]:
    """The frames of a recording, rendered lazily one at a time (long streams never sit in memory)."""
    spec = spec or SceneSpec()
    for k in range(spec.frames):
        yield render(spec, k)
