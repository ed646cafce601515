"""Ground truth of a synthetic recording as a DAVIS / MeViS-style folder, and its reader.

The layout is the one referring-video-segmentation evaluators already read::

    gt/JPEGImages/<video>/00000.jpg       colour frames (JPEG quality 95)
    gt/Annotations/<video>/00000.png      palette PNG, pixel value = object id (DAVIS palette)
    gt/meta_expressions.json              frames, expressions (text -> obj_id), object names
    gt/stamps.json                        header stamp of every frame, frame_id, CameraInfo, scene options

so a node's output, matched by header stamp, can be scored against it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sa2va_i_ros.testing.synthetic.scene import EXPRESSIONS, OBJECTS, VIDEO, Frame, SceneSpec
from sa2va_i_ros.testing.synthetic.views import view


def davis_palette() -> list[int]:
    """The DAVIS (= PASCAL VOC) palette, 256 RGB triplets flattened: id 1 dark red, 2 green, ..."""
    palette = []
    for i in range(256):
        rgb, c = [0, 0, 0], i
        for bit in range(8):
            for ch in range(3):
                rgb[ch] |= ((c >> ch) & 1) << (7 - bit)
            c >>= 3
        palette += rgb
    return palette


class GtWriter:
    """Writes one frame at a time (JPEG + palette PNG); ``close()`` writes the two JSON files."""

    def __init__(self, root: str | Path, spec: SceneSpec, video: str = VIDEO):
        self.root, self.spec, self.video = Path(root), spec, video
        self.images, self.annotations = self.root / "JPEGImages" / video, self.root / "Annotations" / video
        self.images.mkdir(parents=True)
        self.annotations.mkdir(parents=True)
        self.names: list[str] = []
        self.stamps: list[int] = []
        self._palette = davis_palette()

    def add(self, frame: Frame) -> None:
        name = f"{frame.index:05d}"
        Image.fromarray(frame.rgb).save(self.images / f"{name}.jpg", quality=95)
        ids = Image.fromarray(frame.ids)
        ids.putpalette(self._palette)
        ids.save(self.annotations / f"{name}.png")
        self.names.append(name)
        self.stamps.append(frame.stamp_ns)

    def close(self) -> None:
        expressions = {str(k): {"exp": text, "obj_id": str(obj_id)}
                       for k, (text, obj_id) in enumerate(EXPRESSIONS)}
        video = {"frames": self.names, "expressions": expressions,
                 "objects": {str(obj_id): name for obj_id, (name, _) in OBJECTS.items()}}
        meta = {"videos": {self.video: video}}
        (self.root / "meta_expressions.json").write_text(json.dumps(meta, indent=1))
        stamps = {self.video: self.stamps, "frame_id": view(self.spec.view).frame_id,
                  "camera_info": self.spec.camera.camera_info(), "scene": dataclasses.asdict(self.spec)}
        (self.root / "stamps.json").write_text(json.dumps(stamps, indent=1))


@dataclass(frozen=True)
class GroundTruth:
    """A GT folder read back; images are loaded on demand (a long recording never sits in memory)."""

    root: Path
    video: str
    frames: list[str]
    stamps_ns: list[int]
    expressions: dict[str, tuple[str, int]]  # expression id -> (text, object id)
    objects: dict[int, str]
    frame_id: str
    camera_info: dict
    scene: dict

    def rgb(self, k: int) -> np.ndarray:
        with Image.open(self.root / "JPEGImages" / self.video / f"{self.frames[k]}.jpg") as im:
            return np.asarray(im.convert("RGB"))

    def ids(self, k: int) -> np.ndarray:
        with Image.open(self.root / "Annotations" / self.video / f"{self.frames[k]}.png") as im:
            if im.mode != "P":
                raise ValueError(f"{im.filename}: annotation must be a palette PNG, got mode {im.mode}")
            return np.asarray(im)

    def masks(self, k: int) -> dict[int, np.ndarray]:
        """Boolean mask of every known object in frame k (all-False where it is hidden or out of view)."""
        ids = self.ids(k)
        return {obj_id: ids == obj_id for obj_id in self.objects}


def read_gt(root: str | Path, video: str = VIDEO) -> GroundTruth:
    root = Path(root)
    meta = json.loads((root / "meta_expressions.json").read_text())["videos"][video]
    stamps = json.loads((root / "stamps.json").read_text())
    if len(stamps[video]) != len(meta["frames"]):
        raise ValueError(f"{root}: {len(meta['frames'])} frames but {len(stamps[video])} stamps")
    expressions = {k: (e["exp"], int(e["obj_id"])) for k, e in meta["expressions"].items()}
    # a plain MeViS/DAVIS meta has no object names: name each referred object by its first expression
    objects = {int(k): v for k, v in meta.get("objects", {}).items()} or {
        obj_id: text for text, obj_id in reversed(expressions.values())}
    return GroundTruth(
        root=root, video=video, frames=list(meta["frames"]), stamps_ns=[int(s) for s in stamps[video]],
        expressions=expressions, objects=objects,
        frame_id=stamps["frame_id"], camera_info=stamps["camera_info"], scene=stamps.get("scene", {}))
