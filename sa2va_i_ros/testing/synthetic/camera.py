"""The synthetic pinhole camera: intrinsics from a horizontal field of view, CameraInfo fields, poses.

The optical frame follows REP 103 (x right, y down, z forward), like
``camera_color_optical_frame`` on a real RGB-D camera, and the pixel (u, v)
is the centre of column u, row v, as in OpenCV and ``image_geometry``. No
distortion: D is five zeros with the plumb_bob model, R is the identity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PinholeCamera:
    """Square-pixel pinhole camera of width x height pixels and a horizontal FOV in degrees."""

    width: int
    height: int
    hfov_deg: float = 60.0

    @property
    def fx(self) -> float:
        return (self.width / 2.0) / math.tan(math.radians(self.hfov_deg) / 2.0)

    @property
    def fy(self) -> float:
        return self.fx

    @property
    def cx(self) -> float:
        return (self.width - 1) / 2.0

    @property
    def cy(self) -> float:
        return (self.height - 1) / 2.0

    def k(self) -> list[float]:
        return [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]

    def camera_info(self) -> dict:
        """The sensor_msgs/CameraInfo fields (lower-case names, plain lists) of this camera."""
        return {
            "width": self.width,
            "height": self.height,
            "distortion_model": "plumb_bob",
            "d": [0.0] * 5,
            "k": self.k(),
            "r": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
            "p": [self.fx, 0.0, self.cx, 0.0, 0.0, self.fy, self.cy, 0.0, 0.0, 0.0, 1.0, 0.0],
        }

    def rays(self) -> np.ndarray:
        """(H*W, 3) camera-frame ray directions with z = 1, row-major, so a ray parameter is a depth."""
        u, v = np.meshgrid(np.arange(self.width, dtype=np.float64), np.arange(self.height, dtype=np.float64))
        x, y = (u - self.cx) / self.fx, (v - self.cy) / self.fy
        return np.stack([x.ravel(), y.ravel(), np.ones(x.size)], axis=1)

    def back_project(self, u, v, depth_m) -> np.ndarray:
        """Camera-frame points (..., 3) of pixels (u, v) at the given depths in metres."""
        z = np.asarray(depth_m, dtype=np.float64)
        x, y = (np.asarray(u) - self.cx) / self.fx * z, (np.asarray(v) - self.cy) / self.fy * z
        return np.stack([x, y, z], -1)

    def project(self, points) -> np.ndarray:
        """Pixel coordinates (..., 2) of camera-frame points (..., 3) in front of the camera."""
        p = np.asarray(points, dtype=np.float64)
        x, y, z = p[..., 0], p[..., 1], p[..., 2]
        return np.stack([self.fx * x / z + self.cx, self.fy * y / z + self.cy], -1)


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """4x4 world_from_camera pose of an optical frame at ``eye`` looking at ``target`` (z up in the world)."""
    eye, target = np.asarray(eye, dtype=np.float64), np.asarray(target, dtype=np.float64)
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x, np.cross(z, x), z], axis=1)
    pose[:3, 3] = eye
    return pose
