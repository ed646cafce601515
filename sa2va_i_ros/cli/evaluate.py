"""``sa2va-i-eval``: J&F of Sa2VA-i on Ref-DAVIS17, MeViS, Ref-YouTube-VOS or the synthetic recording.

    sa2va-i-eval --dataset mevis --root data/mevis --model kumuji/Sa2VA-i-1B \
        --num-frames 8 --device cuda --dtype bfloat16 --out eval/mevis_8f
    torchrun --nproc-per-node 8 -m sa2va_i_ros.cli.evaluate ...same options...   # one rank per GPU
    sa2va-i-eval ... --grid num_frames=5,8 sampling=uniform,first prompt_frames=all,first

For each expression the model segments every frame of its video; J and F are
means over the frames, the dataset's J and F means over the expressions, J&F
their mean (docs/EVALUATION.md). Each rank logs one line per expression as it
finishes to OUT/parts/rank-<r>.jsonl; rank 0 keeps OUT/summary.json and
OUT/summary.md up to date and at the end merges the parts into
OUT/results.jsonl (one line per expression, dataset order, identical for any
number of ranks) and writes OUT/report/index.html. --resume keeps what is
done, whatever the number of ranks before. Splits without public ground truth
(Ref-YouTube-VOS valid, MeViS valid) get OUT/Annotations/<video>/<eid>/<frame>.png
for the benchmark's server instead; --save-masks writes those for any split.
With --grid, each setting gets its own folder OUT/<setting>/ and OUT/ablation.md
the table of all of them.

This module is the command line only; the run itself is
``sa2va_i_ros.offline.evaluation.run.Evaluation``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sa2va_i_ros.offline.evaluation.datasets import DATASETS, DEFAULT_SPLIT
from sa2va_i_ros.offline.evaluation.distributed import BACKENDS, Dist, DistError
from sa2va_i_ros.offline.evaluation.loading import load_q_frames, load_segmenter
from sa2va_i_ros.offline.evaluation.plan import UsageError
from sa2va_i_ros.offline.evaluation.run import Evaluation
from sa2va_i_ros.offline.evaluation.settings import (
    SettingsError,
    add_arguments,
    expand_grid,
    from_args,
    knobs,
    parse_grid,
)
from sa2va_i_ros.offline.evaluation.store import RunFolder
from sa2va_i_ros.offline.evaluation.worker import Cell


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sa2va-i-eval", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--root", required=True, help="dataset folder (layouts in docs/EVALUATION.md)")
    p.add_argument("--model", required=True, help="checkpoint directory or Hugging Face hub id")
    p.add_argument("--split", default=None,
                   help="default: valid (ref-davis17, ref-youtube-vos), valid_u (mevis); none for synthetic")
    add_arguments(p)  # --num-frames, --sampling, --prompt-frames, ... (sa2va_i_ros/offline/evaluation/settings.py)
    p.add_argument("--grid", nargs="+", metavar="NAME=V1,V2", default=None,
                   help=f"evaluate every combination (one model load per distinct model); settings: "
                        f"{', '.join(knobs())}; e.g. --grid num_frames=5,8 sampling=uniform,first")
    p.add_argument("--q-frame-file", default=None,
                   help="--mode q_frame: selected_frames.json ({video: {selected_frames: {eid: [100 ids]}}})")
    p.add_argument("--device", default="cpu",
                   help="cpu, cuda or cuda:N; under torchrun, cuda means cuda:LOCAL_RANK")
    p.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    p.add_argument("--original-sam2", default=None, help="SAM 2.0 safetensors (plain Sa2VA checkpoints only)")
    # as the node's model_revision and lm_devices parameters (ros/parameters.py): handed to the loader as given
    p.add_argument("--revision", default=None, help="hub revision (branch, tag or commit) of a hub model")
    p.add_argument("--lm-devices", default=None,
                   help="spread the language model's layers over these devices, e.g. cuda:0,cuda:1 (every rank "
                        "uses the same list: under torchrun give each rank its own machine, --nproc-per-node 1)")
    p.add_argument("--limit", type=_positive, default=None, help="only the first K expressions (smoke runs)")
    p.add_argument("--out", default="eval_out", help="output folder (default eval_out)")
    p.add_argument("--resume", action="store_true", help="keep finished expressions (any number of ranks before)")
    p.add_argument("--save-masks", action="store_true", help="also write prediction PNGs when scoring")
    p.add_argument("--no-report", action="store_true", help="skip OUT/report/ (plots and overlays)")
    p.add_argument("--report-examples", type=int, default=3, metavar="K",
                   help="overlays of the K best and K worst expressions in the report (default 3)")
    p.add_argument("--dist-backend", choices=BACKENDS, default="auto",
                   help="torchrun only: auto = nccl on CUDA, gloo on CPU")
    p.add_argument("--dist-timeout", type=_seconds, default=600.0,
                   help="torchrun only: seconds a start-up collective may wait for the other ranks (600)")
    p.add_argument("--stall-timeout", type=_seconds, default=1800.0,
                   help="torchrun only: rank 0 stops waiting when no rank made progress for this long (1800)")
    return p.parse_args(argv)


def make_cells(args: argparse.Namespace, split: str) -> tuple[list[Cell], list[str]]:
    """The settings to evaluate and their folders; and the grid's axes ([] without --grid)."""
    base = from_args(args)
    axes = parse_grid(args.grid) if args.grid else []
    settings = expand_grid(base, axes) if axes else [base]
    out, names = Path(args.out), [n for n, _ in axes]
    cells = []
    for s in settings:
        options = {"dataset": args.dataset, "split": split, "root": str(args.root), "model": args.model,
                   **s.as_dict(), "device": args.device, "dtype": args.dtype, "original_sam2": args.original_sam2,
                   "revision": args.revision, "lm_devices": args.lm_devices, "limit": args.limit,
                   "q_frame_file": args.q_frame_file}
        folder = RunFolder(out / s.slug(names) if axes else out)
        cells.append(Cell(s, folder, options, s.slug(names) if axes else "run"))
    return cells, names


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    split = DEFAULT_SPLIT[args.dataset] if args.split is None else args.split
    try:
        dist = Dist.from_env()
        cells, axes = make_cells(args, split)
        if any(c.settings.mode == "q_frame" for c in cells) != (args.q_frame_file is not None):
            raise UsageError("--mode q_frame and --q-frame-file go together")
        args.q_frames = load_q_frames(args.q_frame_file) if args.q_frame_file else None
    except (DistError, SettingsError, UsageError) as exc:
        print(f"sa2va-i-eval: {exc}", file=sys.stderr)
        return 2
    try:
        # this module's load_segmenter, looked up now: tests replace it with their doubles
        return Evaluation(args, split, cells, axes, dist, started, load_segmenter=load_segmenter).run()
    finally:
        dist.close()


if __name__ == "__main__":
    raise SystemExit(main())
