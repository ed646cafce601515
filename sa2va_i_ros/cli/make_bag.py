"""``sa2va-i-make-bag``: a deterministic synthetic tabletop rosbag2 recording and its ground truth.

    sa2va-i-make-bag OUT_DIR [--storage mcap|sqlite3] [--compressed] [--frames 90] [--size 320x240]
                     [--fps 15] [--seed 0] [--cameras head[,wrist]]

Writes ``OUT_DIR/tabletop_<storage>/`` (the bag: colour, aligned depth and
CameraInfo topics; with ``--compressed``, ``OUT_DIR/tabletop_<storage>_compressed/``
with image_transport's ``compressed`` JPEG colour and ``compressedDepth`` PNG
depth instead) and ``OUT_DIR/gt/`` (DAVIS-style ground truth, see docs/BAGS.md).
An existing bag is never overwritten without ``--force``; an existing gt/ of
the same scene is kept (so the mcap, sqlite3 and compressed bags of one scene
share it), one of another scene is an error without ``--force``.

``--cameras head,wrist`` records a second, wrist-like camera of the same scene
at the same stamps on its own topics (``/camera/wrist/...``, see
``testing/synthetic/views.py``) into ``OUT_DIR/tabletop_head_wrist_<storage>/``,
with its ground truth in ``OUT_DIR/gt_wrist/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

from sa2va_i_ros.testing.synthetic.bag_writer import STORAGES, topic_types, write_cameras_bag
from sa2va_i_ros.testing.synthetic.gt import GtWriter
from sa2va_i_ros.testing.synthetic.scene import SceneSpec, generate_frames
from sa2va_i_ros.testing.synthetic.views import VIEWS


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, got {text!r}") from None
    return width, height


def _cameras(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in VIEWS]
    if not names or unknown or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"cameras must be distinct names among {', '.join(VIEWS)}, got {text!r}")
    return names


def gt_folder(out_dir: Path, camera: str) -> Path:
    """gt/ for the head camera (as single-camera recordings always had), gt_<camera>/ for the others."""
    return out_dir / ("gt" if camera == "head" else f"gt_{camera}")


def bag_folder(out_dir: Path, storage: str, compressed: bool, cameras: tuple[str, ...]) -> Path:
    cams = "" if cameras == ("head",) else "_" + "_".join(cameras)
    return out_dir / f"tabletop{cams}_{storage}{'_compressed' if compressed else ''}"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sa2va-i-make-bag", description=__doc__.split("\n")[0])
    p.add_argument("out_dir", type=Path, help="output folder (created)")
    p.add_argument("--storage", choices=sorted(STORAGES), default="mcap", help="bag storage (default mcap)")
    p.add_argument("--compressed", action="store_true",
                   help="record image_transport's compressed (JPEG) colour and compressedDepth (PNG) depth")
    p.add_argument("--frames", type=int, default=90, help="number of frames (default 90)")
    p.add_argument("--size", type=_size, default=(320, 240), help="WIDTHxHEIGHT (default 320x240)")
    p.add_argument("--fps", type=float, default=15.0, help="frame rate (default 15)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--cameras", type=_cameras, default=("head",),
                   help=f"comma-separated camera views recorded together (default head; known: {', '.join(VIEWS)})")
    p.add_argument("--force", action="store_true", help="replace an existing bag and gt/")
    return p.parse_args(argv)


def _gt_state(gt_dir: Path, spec: SceneSpec) -> str:
    """'missing', 'same' (made from this spec) or 'other'."""
    stamps = gt_dir / "stamps.json"
    if not gt_dir.exists():
        return "missing"
    if stamps.is_file() and json.loads(stamps.read_text()).get("scene") == dataclasses.asdict(spec):
        return "same"
    return "other"


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        specs = {cam: SceneSpec(width=args.size[0], height=args.size[1], frames=args.frames, fps=args.fps,
                                seed=args.seed, view=cam) for cam in args.cameras}
    except ValueError as exc:
        print(f"sa2va-i-make-bag: {exc}", file=sys.stderr)
        return 2
    spec = next(iter(specs.values()))
    bag_dir = bag_folder(args.out_dir, args.storage, args.compressed, args.cameras)
    gt_dirs = {cam: gt_folder(args.out_dir, cam) for cam in args.cameras}
    gt_states = {cam: _gt_state(gt_dirs[cam], specs[cam]) for cam in args.cameras}
    other = [gt_dirs[cam] for cam, state in gt_states.items() if state == "other"]
    if not args.force and (bag_dir.exists() or other):
        what = bag_dir if bag_dir.exists() else f"{other[0]} (made from another scene)"
        print(f"sa2va-i-make-bag: {what} exists; use --force to replace it", file=sys.stderr)
        return 1
    shutil.rmtree(bag_dir, ignore_errors=True)
    write_gt = {cam: args.force or gt_states[cam] != "same" for cam in args.cameras}
    for cam, write in write_gt.items():
        if write:
            shutil.rmtree(gt_dirs[cam], ignore_errors=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    gts = {cam: GtWriter(gt_dirs[cam], specs[cam]) for cam, write in write_gt.items() if write}
    t0 = time.perf_counter()
    try:
        streams = {cam: (generate_frames(s), s.camera.camera_info()) for cam, s in specs.items()}

        def add_gt(cam, frame):  # the GT writers ride along: every frame is rendered once
            if cam in gts:
                gts[cam].add(frame)

        count = write_cameras_bag(bag_dir, streams, args.storage, compressed=args.compressed, on_frame=add_gt)
        for gt in gts.values():
            gt.close()
    except BaseException:
        shutil.rmtree(bag_dir, ignore_errors=True)
        for gt in gts.values():
            shutil.rmtree(gt.root, ignore_errors=True)
        raise
    seconds = time.perf_counter() - t0
    duration = spec.stamp_ns(spec.frames - 1) - spec.stamp_ns(0)
    kind = f"{args.storage}, compressed" if args.compressed else args.storage
    print(f"bag: {bag_dir} ({kind}, {count} messages, {spec.frames} frames of "
          f"{spec.width}x{spec.height} at {spec.fps:g} fps, {duration / 1e9:.3f} s, seed {spec.seed})")
    for cam in args.cameras:
        for topic, msgtype in topic_types(args.compressed, cam).items():
            print(f"  {topic} [{msgtype}]")
    for cam, gt_dir in gt_dirs.items():
        print(f"gt:  {gt_dir} ({'written' if write_gt[cam] else 'kept: same scene'})")
    print(f"took {seconds:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
