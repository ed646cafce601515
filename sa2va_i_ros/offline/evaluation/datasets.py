"""Readers for the Ref-VOS benchmarks in the layouts of Sa2VA's (ReferFormer's) data preparation.

A reader returns the dataset's expressions: (video, expression id, text, frame
paths, ground truth per frame or None where the split has no public ground
truth). Every path is checked up front, so that a GPU run does not stop halfway
on a missing file; masks and frames are read only when asked for.

Frames are taken in sorted name order, as Sa2VA's ``RefVOSDataset`` does, and
each ground-truth mask stays paired with its frame name (MeViS' ``mask_dict``
is indexed by the position in the json's frame list, as ``eval_mevis.py`` does).
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from sa2va_i_ros.offline.evaluation.rle import RLEError, decode_rle

DATASETS = ("ref-davis17", "mevis", "ref-youtube-vos", "synthetic")
DEFAULT_SPLIT = {"ref-davis17": "valid", "mevis": "valid_u", "ref-youtube-vos": "valid", "synthetic": ""}
# Splits scored only by the benchmark's server: the reader gives no ground truth.
SERVER_SPLITS = {"mevis": ("valid",), "ref-youtube-vos": ("valid",)}


class DatasetError(ValueError):
    """The dataset's layout is missing or corrupt; the message names the path."""


@dataclass(frozen=True)
class Expression:
    video: str
    eid: str
    text: str
    frames: tuple[Path, ...]  # temporal (sorted name) order
    gt_loader: Callable[[], list[np.ndarray]] | None = field(default=None, repr=False, compare=False)

    @property
    def key(self) -> str:
        return f"{self.video}/{self.eid}"

    @property
    def frame_names(self) -> list[str]:
        return [p.stem for p in self.frames]

    def gt_masks(self) -> list[np.ndarray] | None:
        """One bool (H, W) mask per frame, or None when the split has no public ground truth."""
        return None if self.gt_loader is None else self.gt_loader()

    def load_frames(self) -> list[np.ndarray]:
        return read_frames(self.frames)


def read_frames(paths: Sequence[Path]) -> list[np.ndarray]:
    """RGB uint8 frames (PIL ``convert("RGB")``, as Sa2VA loads them), all of one size."""
    frames = []
    for path in paths:
        try:
            with Image.open(path) as img:
                frames.append(np.asarray(img.convert("RGB")))
        except OSError as exc:
            raise DatasetError(f"{path}: unreadable frame ({exc})") from exc
        if frames[-1].shape != frames[0].shape:
            raise DatasetError(f"{path} is {frames[-1].shape[:2]}, the first frame {frames[0].shape[:2]}")
    return frames


def load_dataset(dataset: str, root: str | Path, split: str | None = None) -> list[Expression]:
    """The expressions of ``dataset`` under ``root`` (layouts in docs/EVALUATION.md)."""
    if dataset not in DATASETS:
        raise DatasetError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root} is missing (dataset root)")
    split = DEFAULT_SPLIT[dataset] if split is None else split
    if dataset == "synthetic":
        if split:
            raise DatasetError("the synthetic recording has no splits (its layout is ROOT/JPEGImages, ...)")
        return read_palette_layout(root / "JPEGImages", root / "meta_expressions.json", root / "Annotations")
    if dataset == "mevis":
        return read_mevis(root, split)
    meta = root / "meta_expressions" / split / "meta_expressions.json"
    if dataset == "ref-davis17":
        annotations, pickled = root / split / "Annotations", root / split / "mask_dict.pkl"
        if not annotations.is_dir() and pickled.is_file():
            return read_davis_mask_dict(root / split / "JPEGImages", meta, pickled)
        return read_palette_layout(root / split / "JPEGImages", meta, annotations)
    if split in SERVER_SPLITS["ref-youtube-vos"]:
        # The competition's valid json also lists the 305 test videos; ReferFormer drops them the same way.
        test_meta = root / "meta_expressions" / "test" / "meta_expressions.json"
        exclude = set(_videos(test_meta)) if test_meta.is_file() else set()
        return read_palette_layout(root / split / "JPEGImages", meta, None, exclude)
    return read_palette_layout(root / split / "JPEGImages", meta, root / split / "Annotations")


def read_palette_layout(images: Path, meta_file: Path, annotations: Path | None,
                        exclude_videos: set[str] | frozenset[str] = frozenset()) -> list[Expression]:
    """Ref-DAVIS17 / Ref-YouTube-VOS / synthetic: ``images/<video>/<frame>.jpg`` and, with
    ``annotations``, ``annotations/<video>/<frame>.png`` whose pixels are object ids; an
    expression's ground truth is the pixels of its ``obj_id`` (one id or a list: their union)."""
    videos = _videos(meta_file)
    _require_dir(images, "frame folders")
    if annotations is not None:
        _require_dir(annotations, "ground-truth folders")
    out = []
    for video, info in videos.items():
        if video in exclude_videos:
            continue
        names, _ = _frame_order(meta_file, video, info)
        frames = _files(images / video, names, ".jpg", f"frames of video {video}")
        labels = None if annotations is None else _files(annotations / video, names, ".png",
                                                          f"ground truth of video {video}")
        for eid, exp in _expressions(meta_file, video, info):
            loader = None
            if labels is not None:
                ids = _object_ids(exp.get("obj_id"), f"{meta_file}: video {video!r}, expression {eid!r}")
                loader = _palette_loader(labels, ids)
            out.append(Expression(video, eid, exp["exp"], frames, loader))
    return out


def read_mevis(root: Path, split: str) -> list[Expression]:
    """MeViS: ``ROOT/<split>/JPEGImages/<video>/<frame>.jpg``, ``meta_expressions.json`` and
    ``mask_dict.json``; an expression's ground truth is the union of its ``anno_id``s' masks.
    The ``valid`` split may come without ``mask_dict.json`` (server-scored)."""
    base = root / split
    meta_file, mask_file = base / "meta_expressions.json", base / "mask_dict.json"
    videos = _videos(meta_file)
    server_only = split in SERVER_SPLITS["mevis"] and not mask_file.exists()
    mask_dict = None if server_only else _read_json(mask_file, "ground-truth masks")
    return read_rle_layout(base / "JPEGImages", meta_file, videos, mask_file, mask_dict,
                           lambda video, eid, exp: exp.get("anno_id"))


def read_davis_mask_dict(images: Path, meta_file: Path, mask_file: Path) -> list[Expression]:
    """Ref-DAVIS17 as Sa2VA's data bundle ships it: ground truth in ``valid/mask_dict.pkl`` under a
    running anno id over the videos, then the expression ids, in sorted (string) order, as Sa2VA's
    Ref-DAVIS17 scoring script (``get_meta_exp``) numbers them."""
    videos = _videos(meta_file)
    running: dict[tuple[str, str], list[int]] = {}
    for video in sorted(videos):
        for eid, _ in _expressions(meta_file, video, videos[video]):
            running[(video, eid)] = [len(running)]
    return read_rle_layout(images, meta_file, videos, mask_file, _read_plain_pickle(mask_file),
                           lambda video, eid, exp: running[(video, eid)])


def read_rle_layout(images: Path, meta_file: Path, videos: dict, mask_file: Path, mask_dict,
                    anno_ids_of: Callable[[str, str, dict], object]) -> list[Expression]:
    """Frames ``images/<video>/<frame>.jpg``; ground truth (when ``mask_dict`` is given): the union of
    the masks of the expression's anno ids, ``mask_dict[str(id)]`` holding one COCO RLE or null per
    frame of the json's ``frames`` list (as ``eval_mevis.py`` indexes it)."""
    _require_dir(images, "frame folders")
    if mask_dict is not None and not isinstance(mask_dict, dict):
        raise DatasetError(f"{mask_file}: expected a mapping from anno_id to per-frame masks")
    out = []
    for video, info in videos.items():
        names, order = _frame_order(meta_file, video, info)
        frames = _files(images / video, names, ".jpg", f"frames of video {video}")
        for eid, exp in _expressions(meta_file, video, info):
            loader = None
            if mask_dict is not None:
                where = f"{meta_file}: video {video!r}, expression {eid!r}"
                anno_ids = anno_ids_of(video, eid, exp)
                if not isinstance(anno_ids, list):
                    raise DatasetError(f"{where}: 'anno_id' must be a list")
                tracks = []
                for anno in map(str, anno_ids):
                    track = mask_dict.get(anno)
                    if not isinstance(track, list) or len(track) != len(order):
                        raise DatasetError(f"{mask_file}: anno_id {anno} ({where}) needs one entry per frame "
                                           f"({len(order)})")
                    tracks.append((anno, [track[k] for k in order]))
                loader = _rle_loader(mask_file, tracks, frames)
            out.append(Expression(video, eid, exp["exp"], frames, loader))
    return out


class _PlainData(pickle.Unpickler):
    """Unpickles plain data only: every class or function reference is refused, so loading runs no code."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"it refers to {module}.{name}; only plain data is read")


def _read_plain_pickle(path: Path):
    try:
        with open(path, "rb") as fh:
            return _PlainData(fh).load()
    except Exception as exc:  # a corrupt or foreign pickle raises many different types
        raise DatasetError(f"{path}: unreadable ground-truth masks ({type(exc).__name__}: {exc})") from exc


def _palette_loader(paths: tuple[Path, ...], ids: tuple[int, ...]) -> Callable[[], list[np.ndarray]]:
    def load() -> list[np.ndarray]:
        return [np.isin(_read_labels(p), ids) for p in paths]

    return load


def _read_labels(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            if img.mode not in ("P", "L"):
                raise DatasetError(f"{path}: mode {img.mode}; expected a palette PNG of object ids")
            return np.asarray(img)
    except OSError as exc:
        raise DatasetError(f"{path}: unreadable annotation ({exc})") from exc


def _rle_loader(mask_file: Path, tracks: list[tuple[str, list]], frames: tuple[Path, ...]):
    def load() -> list[np.ndarray]:
        per_frame: list[list[np.ndarray]] = [[] for _ in frames]
        for anno, rles in tracks:
            for k, rle in enumerate(rles):
                if rle:  # null (or empty): the object is absent from this frame
                    try:
                        per_frame[k].append(decode_rle(rle))
                    except RLEError as exc:
                        raise DatasetError(f"{mask_file}: anno_id {anno}, frame {k}: {exc}") from exc
        shapes = {m.shape for masks in per_frame for m in masks}
        if len(shapes) > 1:
            raise DatasetError(f"{mask_file}: masks of one expression differ in size: {sorted(shapes)}")
        if not shapes:
            with Image.open(frames[0]) as img:  # the object is absent throughout: empty masks
                shapes = {(img.height, img.width)}
        shape = shapes.pop()
        return [np.logical_or.reduce(masks) if masks else np.zeros(shape, bool) for masks in per_frame]

    return load


def _read_json(path: Path, what: str):
    if not path.is_file():
        raise DatasetError(f"{path} is missing ({what})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: unreadable {what} ({exc})") from exc


def _videos(meta_file: Path) -> dict:
    data = _read_json(meta_file, "expressions file")
    videos = data.get("videos") if isinstance(data, dict) else None
    if not isinstance(videos, dict):
        raise DatasetError(f"{meta_file}: expected {{\"videos\": {{...}}}}")
    return videos


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise DatasetError(f"{path} is missing ({what})")


def _frame_order(meta_file: Path, video: str, info) -> tuple[list[str], list[int]]:
    """Sorted frame names and, for each, its position in the json's list."""
    names = info.get("frames") if isinstance(info, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DatasetError(f"{meta_file}: video {video!r} needs a non-empty 'frames' list of names")
    order = sorted(range(len(names)), key=names.__getitem__)
    return [names[k] for k in order], order


def _expressions(meta_file: Path, video: str, info: dict) -> list[tuple[str, dict]]:
    """(id, entry) in sorted id order, as Sa2VA's RefVOSDataset lists them."""
    exps = info.get("expressions") if isinstance(info, dict) else None
    if not isinstance(exps, dict):
        raise DatasetError(f"{meta_file}: video {video!r} needs an 'expressions' object")
    for eid, exp in exps.items():
        if not isinstance(exp, dict) or not isinstance(exp.get("exp"), str):
            raise DatasetError(f"{meta_file}: video {video!r}, expression {eid!r} needs an 'exp' text")
    return sorted(exps.items())


def _files(folder: Path, names: list[str], suffix: str, what: str) -> tuple[Path, ...]:
    try:
        present = set(os.listdir(folder))
    except OSError as exc:
        raise DatasetError(f"{folder} is missing ({what})") from exc
    for name in names:
        if name + suffix not in present:
            raise DatasetError(f"{folder / (name + suffix)} is missing ({what})")
    return tuple(folder / (name + suffix) for name in names)


def _object_ids(value, where: str) -> tuple[int, ...]:
    values = value if isinstance(value, list) else [value]
    try:
        ids = tuple(int(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{where}: 'obj_id' must be an object id or a list of ids, not {value!r}") from exc
    if not ids:
        raise DatasetError(f"{where}: 'obj_id' is empty")
    return ids
