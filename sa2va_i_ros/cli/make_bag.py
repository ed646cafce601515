"""``sa2va-i-make-bag``: a deterministic synthetic tabletop rosbag2 recording and its ground truth.

    sa2va-i-make-bag OUT_DIR [--storage mcap|sqlite3] [--compressed] [--frames 90] [--size 320x240]
                     [--fps 15] [--seed 0]

Writes ``OUT_DIR/tabletop_<storage>/`` (the bag: colour, aligned depth and
CameraInfo topics; with ``--compressed``, ``OUT_DIR/tabletop_<storage>_compressed/``
with image_transport's ``compressed`` JPEG colour and ``compressedDepth`` PNG
depth instead) and ``OUT_DIR/gt/`` (DAVIS-style ground truth, see docs/BAGS.md).
An existing bag is never overwritten without ``--force``; an existing gt/ of
the same scene is kept (so the mcap, sqlite3 and compressed bags of one scene
share it), one of another scene is an error without ``--force``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

from sa2va_i_ros.testing.synthetic.bag_writer import STORAGES, topic_types, write_bag
from sa2va_i_ros.testing.synthetic.gt import GtWriter
from sa2va_i_ros.testing.synthetic.scene import SceneSpec, generate_frames


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, got {text!r}") from None
    return width, height


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
        spec = SceneSpec(width=args.size[0], height=args.size[1], frames=args.frames, fps=args.fps,
                         seed=args.seed)
    except ValueError as exc:
        print(f"sa2va-i-make-bag: {exc}", file=sys.stderr)
        return 2
    suffix = "_compressed" if args.compressed else ""
    bag_dir, gt_dir = args.out_dir / f"tabletop_{args.storage}{suffix}", args.out_dir / "gt"
    gt_state = _gt_state(gt_dir, spec)
    if not args.force and (bag_dir.exists() or gt_state == "other"):
        what = bag_dir if bag_dir.exists() else f"{gt_dir} (made from another scene)"
        print(f"sa2va-i-make-bag: {what} exists; use --force to replace it", file=sys.stderr)
        return 1
    shutil.rmtree(bag_dir, ignore_errors=True)
    write_gt = args.force or gt_state != "same"
    if write_gt:
        shutil.rmtree(gt_dir, ignore_errors=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    gt = GtWriter(gt_dir, spec) if write_gt else None
    t0 = time.perf_counter()
    try:
        count = write_bag(bag_dir, generate_frames(spec), spec.camera.camera_info(), args.storage,
                          on_frame=gt.add if gt else None, compressed=args.compressed)
        if gt:
            gt.close()
    except BaseException:
        shutil.rmtree(bag_dir, ignore_errors=True)
        if gt:
            shutil.rmtree(gt_dir, ignore_errors=True)
        raise
    seconds = time.perf_counter() - t0
    duration = spec.stamp_ns(spec.frames - 1) - spec.stamp_ns(0)
    kind = f"{args.storage}, compressed" if args.compressed else args.storage
    print(f"bag: {bag_dir} ({kind}, {count} messages, {spec.frames} frames of "
          f"{spec.width}x{spec.height} at {spec.fps:g} fps, {duration / 1e9:.3f} s, seed {spec.seed})")
    for topic, msgtype in topic_types(args.compressed).items():
        print(f"  {topic} [{msgtype}]")
    print(f"gt:  {gt_dir} ({'written' if write_gt else 'kept: same scene'})")
    print(f"took {seconds:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
