"""A small synthetic Ref-VOS benchmark: several tabletop recordings of different lengths in one folder.

    python -m sa2va_i_ros.testing.synthetic.benchmark OUT [--lengths 4,7,12] [--size 64x48]

The layout is the one ``sa2va-i-eval --dataset synthetic`` reads (Ref-DAVIS
style, docs/EVALUATION.md): ``OUT/JPEGImages/<video>/``, ``OUT/Annotations/<video>/``
and one ``OUT/meta_expressions.json`` listing every video with the scene's five
expressions. Videos ``tabletop0``, ``tabletop1``, ... differ in length and noise
seed, so a sharded evaluation has unequal work to balance and its report has
J&F by video length to plot.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from sa2va_i_ros.testing.synthetic.gt import GtWriter
from sa2va_i_ros.testing.synthetic.scene import SceneSpec, generate_frames


def write_benchmark(root: str | Path, lengths: Sequence[int] = (4, 7, 12), size: tuple[int, int] = (64, 48),
                    seed: int = 0) -> list[str]:
    """Write the videos (``lengths`` frames each) under ``root``; returns their names."""
    root = Path(root)
    videos, names = {}, []
    for i, frames in enumerate(lengths):
        spec = SceneSpec(width=size[0], height=size[1], frames=frames, seed=seed + i)
        name = f"tabletop{i}"
        writer = GtWriter(root, spec, video=name)
        for frame in generate_frames(spec):
            writer.add(frame)
        writer.close()  # its meta_expressions.json names this video only: collected below
        videos.update(json.loads((root / "meta_expressions.json").read_text())["videos"])
        names.append(name)
    (root / "meta_expressions.json").write_text(json.dumps({"videos": videos}, indent=1))
    (root / "stamps.json").unlink(missing_ok=True)  # one recording's stamps; meaningless for the set
    return names


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sa2va_i_ros.testing.synthetic.benchmark",
                                description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path, help="output folder (must not exist)")
    p.add_argument("--lengths", default="4,7,12", help="frames of each video, comma separated (default 4,7,12)")
    p.add_argument("--size", default="64x48", help="WIDTHxHEIGHT (default 64x48)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        lengths = [int(v) for v in args.lengths.split(",")]
        width, height = (int(v) for v in args.size.lower().split("x"))
        if args.out.exists():
            raise ValueError(f"{args.out} exists")
        names = write_benchmark(args.out, lengths, (width, height), args.seed)
    except ValueError as exc:
        print(f"sa2va_i_ros.testing.synthetic.benchmark: {exc}", file=sys.stderr)
        return 2
    listing = ", ".join(f"{n} {k} frames" for n, k in zip(names, lengths, strict=True))
    print(f"{args.out}: {len(names)} videos ({listing})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
