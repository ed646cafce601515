"""The cameras that watch the synthetic table: a head camera and a wrist camera, each with its own topics.

A mobile manipulator's head camera sees the whole table (the recording's
story: occlusion, pan away and back); its wrist camera is close, looking down
at the red cup as a gripper approaches it, so the same object is large in one
view and small in the other. Both render the same world at the same stamps,
as two hardware-synchronised RGB-D cameras would.

Topics follow realsense2_camera >= 4.54 (``/<namespace>/<camera name>/...``):
the head camera keeps the driver's defaults (``/camera/camera/...``, the
node's defaults), the wrist camera is ``camera_name:=wrist``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sa2va_i_ros.testing.synthetic.camera import look_at


def _smooth(s: float, a: float, b: float) -> float:
    """0 before a, 1 after b, a smoothstep between (the camera and the hand never jerk)."""
    x = min(max((s - a) / (b - a), 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def pulse(s: float, rise: tuple[float, float], fall: tuple[float, float]) -> float:
    return _smooth(s, *rise) * (1.0 - _smooth(s, *fall))


def head_pose(s: float) -> np.ndarray:
    """World_from_camera at progress s in [0, 1]: a gentle sway, and a pan right and back in the middle."""
    eye = (0.04 * np.sin(2.0 * np.pi * s), -0.05, 0.45)
    target = (0.75 * pulse(s, (0.42, 0.56), (0.68, 0.82)), 0.62, 0.0)
    return look_at(eye, target)


def wrist_pose(s: float) -> np.ndarray:
    """A gripper's camera approaching the red cup from above and in front, then backing off a little."""
    approach = _smooth(s, 0.1, 0.6) - 0.4 * _smooth(s, 0.75, 0.95)
    eye = (-0.20 + 0.03 * np.sin(2.0 * np.pi * s), 0.22 + 0.12 * approach, 0.42 - 0.10 * approach)
    return look_at(eye, (-0.18, 0.60, 0.03))


@dataclass(frozen=True)
class View:
    """One camera of the scene: its pose over the clip, its optical frame and its topics' prefix."""

    name: str
    pose: Callable[[float], np.ndarray]
    frame_id: str
    prefix: str  # /<namespace>/<camera name>

    @property
    def color_topic(self) -> str:
        return f"{self.prefix}/color/image_raw"

    @property
    def depth_topic(self) -> str:
        return f"{self.prefix}/aligned_depth_to_color/image_raw"

    @property
    def info_topic(self) -> str:
        return f"{self.prefix}/color/camera_info"


VIEWS: dict[str, View] = {
    "head": View("head", head_pose, "camera_color_optical_frame", "/camera/camera"),
    "wrist": View("wrist", wrist_pose, "wrist_color_optical_frame", "/camera/wrist"),
}


def view(name: str) -> View:
    """The view called ``name``; a ValueError names the known ones."""
    if name not in VIEWS:
        raise ValueError(f"unknown camera view {name!r}; known: {', '.join(VIEWS)}")
    return VIEWS[name]
