"""The synthetic tabletop scene: determinism, geometry consistency, and that its story really happens."""

from __future__ import annotations

import inspect
import math
import time

import numpy as np
import pytest

from sa2va_i_ros.testing.synthetic.scene import HAND_ID, NS_PER_S, OBJECTS, SHAPES, SceneSpec, generate_frames, render

CUP, BOWL, CUP_RIGHT = 1, 2, 3


@pytest.fixture(scope="module")
def spec():
    return SceneSpec()


@pytest.fixture(scope="module")
def frames(spec):
    t0 = time.perf_counter()
    out = list(generate_frames(spec))
    print(f"\ngenerated {len(out)} frames of {spec.width}x{spec.height} in {time.perf_counter() - t0:.2f} s")
    return out


def _table_depth(spec: SceneSpec, frame) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: depth (m) at which the pixel's ray meets the plane z = 0, and the ray's world z slope."""
    rays = spec.camera.rays()
    rot, eye = frame.world_from_camera[:3, :3], frame.world_from_camera[:3, 3]
    dz = (rays @ rot.T)[:, 2]
    with np.errstate(divide="ignore"):
        t = -eye[2] / dz
    shape = (spec.height, spec.width)
    return t.reshape(shape), dz.reshape(shape)


def _cup_outline_pixels(spec: SceneSpec, frame) -> np.ndarray:
    """Pixels of points around the red cup's rim and base, and the camera-frame depths of those points."""
    cup = SHAPES[CUP]
    angles = np.linspace(0.0, 2.0 * np.pi, 48, endpoint=False)
    ring = np.stack([cup.x + cup.radius * np.cos(angles), cup.y + cup.radius * np.sin(angles)], axis=1)
    pts = np.concatenate([np.c_[ring, np.zeros(48)], np.c_[ring, np.full(48, cup.height)]])
    cam = (pts - frame.world_from_camera[:3, 3]) @ frame.world_from_camera[:3, :3]
    assert (cam[:, 2] > 0).all()
    return spec.camera.project(cam)


def _inside(spec: SceneSpec, uv: np.ndarray) -> np.ndarray:
    u, v = uv[:, 0], uv[:, 1]
    return (u >= -0.5) & (u <= spec.width - 0.5) & (v >= -0.5) & (v <= spec.height - 0.5)


def test_frames_are_lazy_and_deterministic(spec):
    gen = generate_frames(spec)
    assert inspect.isgenerator(gen)
    first = next(gen)
    for k in (0, 20, 45):  # out of order, in a fresh call: still the same bytes
        a, b = render(spec, k), render(SceneSpec(), k)
        assert a.rgb.tobytes() == b.rgb.tobytes()
        assert a.depth_mm.tobytes() == b.depth_mm.tobytes()
        assert a.ids.tobytes() == b.ids.tobytes()
    assert render(spec, 0).rgb.tobytes() == first.rgb.tobytes()
    other = render(SceneSpec(seed=1), 20)
    same = render(spec, 20)
    assert other.rgb.tobytes() != same.rgb.tobytes()
    assert np.array_equal(other.ids, same.ids)  # the seed drives the noise, not the geometry


def test_shapes_dtypes_stamps_and_camera_info(spec, frames):
    assert len(frames) == 90
    for k, f in enumerate(frames):
        assert f.index == k
        assert f.rgb.shape == (240, 320, 3) and f.rgb.dtype == np.uint8
        assert f.depth_mm.shape == (240, 320) and f.depth_mm.dtype == np.uint16
        assert f.ids.shape == (240, 320) and f.ids.dtype == np.uint8
        assert f.stamp_ns == spec.start_ns + round(k * NS_PER_S / 15.0)
        assert set(np.unique(f.ids)) <= {0, *OBJECTS}
    assert set(np.unique(frames[0].ids)) == {0, 1, 2, 3, 4, 5}  # every object but the hand
    assert (frames[0].depth_mm == 0).any()  # beyond the table: no return
    info = spec.camera.camera_info()
    fx = 160.0 / math.tan(math.radians(30.0))
    assert info["k"] == pytest.approx([fx, 0, 159.5, 0, fx, 119.5, 0, 0, 1])
    assert info["p"] == pytest.approx([fx, 0, 159.5, 0, 0, fx, 119.5, 0, 0, 0, 1, 0])
    assert info["d"] == [0.0] * 5 and info["distortion_model"] == "plumb_bob"
    assert info["r"] == [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]
    assert (info["width"], info["height"]) == (320, 240)


def test_depth_agrees_with_ground_truth(spec, frames):
    for f in frames[::6]:
        t_table, dz = _table_depth(spec, f)
        objects = f.ids > 0
        assert (f.depth_mm[objects] > 0).all()
        assert (dz[objects] < 0).all()
        # every object stands on (or hovers over) the table: nearer than the table behind it, but
        # where a wall meets the table, within the millimetre rounding of it
        table_mm = np.rint(t_table[objects] * 1000.0)
        assert (f.depth_mm[objects] <= table_mm).all()
        assert np.mean(f.depth_mm[objects] < table_mm - 5) > 0.95
    # the lower half of the first frame is bare table: depth is the z-depth of the plane, to the millimetre
    f = frames[0]
    t_table, _ = _table_depth(spec, f)
    rows = slice(spec.height - 40, spec.height)
    assert (f.ids[rows] == 0).all()
    assert np.abs(f.depth_mm[rows].astype(float) - t_table[rows] * 1000.0).max() <= 0.5 + 1e-6


def test_cup_is_left_of_the_bowl_and_a_second_cup_is_right(frames):
    def cx(obj_id):
        return np.nonzero(frames[0].mask(obj_id))[1].mean()

    assert cx(CUP) < cx(BOWL) < cx(CUP_RIGHT)


def test_back_projected_cup_pixels_lie_on_the_cup(spec, frames):
    f, cup, cam = frames[0], SHAPES[CUP], spec.camera
    v, u = np.nonzero(f.ids == CUP)
    points = cam.back_project(u, v, f.depth_mm[v, u] / 1000.0)
    assert np.allclose(cam.project(points), np.stack([u, v], axis=1), atol=1e-6)
    world = points @ f.world_from_camera[:3, :3].T + f.world_from_camera[:3, 3]
    radial = np.hypot(world[:, 0] - cup.x, world[:, 1] - cup.y)
    assert radial.max() <= cup.radius + 0.003
    assert world[:, 2].min() >= -0.003 and world[:, 2].max() <= cup.height + 0.003


def test_cup_is_occluded_then_leaves_and_reenters(spec, frames):
    states = []
    for f in frames:
        uv = _cup_outline_pixels(spec, f)
        visible = (f.ids == CUP).any()
        if not _inside(spec, uv).any():
            states.append("out")
            assert not visible
        elif not visible:
            states.append("hidden")
            assert _inside(spec, uv).all()  # in the view, yet no pixel of it: something is in front
            u, v = np.rint(uv.mean(axis=0)).astype(int)
            assert f.ids[v, u] == HAND_ID
        else:
            states.append("seen")
    runs = [s for k, s in enumerate(states) if k == 0 or s != states[k - 1]]
    print("\ncup states:", "".join(s[0] for s in states))
    assert runs == ["seen", "hidden", "seen", "out", "seen"]
    assert states.count("hidden") >= 5 and states.count("out") >= 10
