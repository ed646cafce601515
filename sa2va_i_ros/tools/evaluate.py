"""``sa2va-i-eval``: J&F of Sa2VA-i on Ref-DAVIS17, MeViS, Ref-YouTube-VOS or the synthetic recording.

    sa2va-i-eval --dataset mevis --root data/mevis --model kumuji/Sa2VA-i-1B \
        --num-frames 8 --device cuda --dtype bfloat16 --out eval/mevis_8f

For each expression the model segments every frame of its video; J and F are
means over the frames, the dataset's J and F means over the expressions, J&F
their mean (docs/EVALUATION.md). OUT/results.jsonl gets one line per expression
as it finishes (--resume skips those); OUT/summary.json and OUT/summary.md are
rewritten after each one. Splits without public ground truth (Ref-YouTube-VOS
valid, MeViS valid) get OUT/Annotations/<video>/<eid>/<frame>.png for the
benchmark's server instead; --save-masks writes those for any split.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm import tqdm

from sa2va_i_ros.core.errors import Sa2VAError
from sa2va_i_ros.core.sasasa2va.modes import MODES as SASASA2VA_MODES
from sa2va_i_ros.evaluation.datasets import DATASETS, DEFAULT_SPLIT, DatasetError, Expression, load_dataset
from sa2va_i_ros.evaluation.metrics import dataset_scores, expression_scores
from sa2va_i_ros.tools.media import write_mask

# Options that change the numbers: a resumed run must keep them.
RESULT_OPTIONS = ("dataset", "split", "model", "num_frames", "sampling", "prompt_frames", "dtype",
                  "original_sam2", "mode", "q_frame_file")
PROTOCOL = ("per frame: DAVIS db_eval_iou and f_measure (bound_th 0.008); per expression: means over all "
            "frames of the video; dataset: means over expressions, an expression that failed counts 0; "
            "J&F = (J + F) / 2")


class VideoSegmenter(Protocol):
    """What the tool needs from a model: Sa2VA-i's video protocol."""

    def segment(self, frames: list[np.ndarray], query: str, *, num_frames: int, sampling: str,
                prompt_frames: str) -> list[np.ndarray]:
        """One bool (H, W) mask per (H, W, 3) uint8 RGB frame."""
        ...


class SegmenterUnavailable(RuntimeError):
    """The inference pipeline cannot be imported."""


class UsageError(Exception):
    """The output folder does not fit the request (exists without --resume, other options)."""


def load_segmenter(model: str, device: str = "cpu", dtype: str = "float32",
                   original_sam2: str | None = None) -> VideoSegmenter:
    """The project's offline pipeline for the checkpoint's kind (Sa2VA-i or SaSaSa2VA, from config.json)."""
    try:
        # both pipelines implement VideoSegmenter; they import torch and sam2, which a bare install may lack
        from sa2va_i_ros.core.pipeline import load_video_pipeline
    except ImportError as exc:
        raise SegmenterUnavailable(f"the inference pipeline (sa2va_i_ros.core.pipeline.VideoPipeline) cannot "
                                   f"be imported: {exc}") from exc
    return load_video_pipeline(model, device=device, dtype=dtype, original_sam2=original_sam2)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sa2va-i-eval", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--root", required=True, help="dataset folder (layouts in docs/EVALUATION.md)")
    p.add_argument("--model", required=True, help="checkpoint directory or Hugging Face hub id")
    p.add_argument("--split", default=None,
                   help="default: valid (ref-davis17, ref-youtube-vos), valid_u (mevis); none for synthetic")
    p.add_argument("--num-frames", type=_positive, default=5, help="frames the language model sees (5)")
    p.add_argument("--sampling", choices=("uniform", "first"), default="uniform",
                   help="which frames it sees: Sa2VA-i's uniform (default) or Sa2VA's first N")
    p.add_argument("--prompt-frames", choices=("all", "first"), default="all",
                   help="SAM2 prompted on every sampled frame (default) or on the first only")
    p.add_argument("--mode", choices=SASASA2VA_MODES, default=None,
                   help="SaSaSa2VA checkpoints only: inference mode (default uniform; docs/SASASA2VA.md)")
    p.add_argument("--q-frame-file", default=None,
                   help="--mode q_frame: selected_frames.json ({video: {selected_frames: {eid: [100 ids]}}})")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    p.add_argument("--original-sam2", default=None, help="SAM 2.0 safetensors (plain Sa2VA checkpoints only)")
    p.add_argument("--limit", type=_positive, default=None, help="only the first K expressions (smoke runs)")
    p.add_argument("--out", default="eval_out", help="output folder (default eval_out)")
    p.add_argument("--resume", action="store_true", help="keep OUT/results.jsonl, skip finished expressions")
    p.add_argument("--save-masks", action="store_true", help="also write prediction PNGs when scoring")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    out = Path(args.out)
    split = DEFAULT_SPLIT[args.dataset] if args.split is None else args.split
    options = {"dataset": args.dataset, "split": split, "root": str(args.root), "model": args.model,
               "num_frames": args.num_frames, "sampling": args.sampling, "prompt_frames": args.prompt_frames,
               "device": args.device, "dtype": args.dtype, "original_sam2": args.original_sam2,
               "limit": args.limit, "mode": args.mode, "q_frame_file": args.q_frame_file}
    try:
        args.q_frames = load_q_frames(args.q_frame_file) if args.q_frame_file else None
        if (args.mode == "q_frame") != (args.q_frames is not None):
            raise UsageError("--mode q_frame and --q-frame-file go together")
        expressions = load_dataset(args.dataset, args.root, split)[: args.limit]
        if not expressions:
            raise DatasetError(f"{args.root}: the dataset lists no expressions")
        results = prepare_out(out, options, args.resume)
    except (DatasetError, UsageError) as exc:
        print(f"sa2va-i-eval: {exc}", file=sys.stderr)
        return 2
    todo = [e for e in expressions if e.key not in results or "error" in results[e.key]]
    timing = {"load_s": 0.0}
    write_summary(out, summarize(expressions, results, options, timing))
    segmenter = None
    if todo:
        try:
            t0 = time.perf_counter()
            segmenter = load_segmenter(args.model, args.device, args.dtype, args.original_sam2)
            timing["load_s"] = round(time.perf_counter() - t0, 3)
        except (SegmenterUnavailable, Sa2VAError, ValueError, OSError) as exc:
            print(f"sa2va-i-eval: cannot load {args.model}: {exc}", file=sys.stderr)
            return 2
        if args.mode is not None and not hasattr(segmenter, "modes"):
            print(f"sa2va-i-eval: --mode is for SaSaSa2VA checkpoints; {args.model} is a Sa2VA / Sa2VA-i one",
                  file=sys.stderr)
            return 2
    bar = tqdm(total=len(expressions), initial=len(expressions) - len(todo), unit="exp", desc=args.dataset)
    cached: tuple[str, list[np.ndarray]] = ("", [])
    try:
        with open(out / "results.jsonl", "a", encoding="utf-8") as log:
            for expr in todo:
                if cached[0] != expr.video:
                    cached = (expr.video, expr.load_frames())
                record = evaluate_expression(expr, cached[1], segmenter, args, out)
                if "error" in record:
                    tqdm.write(f"sa2va-i-eval: {expr.key} {expr.text!r}: {record['error']}", file=sys.stderr)
                log.write(json.dumps(record) + "\n")
                log.flush()
                results[expr.key] = record
                timing["wall_s"] = round(time.perf_counter() - started, 3)
                summary = summarize(expressions, results, options, timing)
                write_summary(out, summary)
                bar.update(1)
                if "J&F" in summary:
                    bar.set_postfix({"J&F": f"{100 * summary['J&F']:.2f}"})
    except DatasetError as exc:
        print(f"sa2va-i-eval: {exc}", file=sys.stderr)
        return 2
    finally:
        bar.close()
    timing["wall_s"] = round(time.perf_counter() - started, 3)
    summary = summarize(expressions, results, options, timing)
    write_summary(out, summary)
    print(headline(summary) + f" -> {out / 'summary.md'}")
    return 1 if summary["errors"] else 0


def evaluate_expression(expr: Expression, frames: list[np.ndarray], segmenter: VideoSegmenter,
                        args: argparse.Namespace, out: Path) -> dict:
    """One results.jsonl record: J, F, J&F (when the split has ground truth) or the error."""
    record = {"video": expr.video, "eid": expr.eid, "exp": expr.text, "frames": len(frames)}
    t0 = time.perf_counter()
    try:
        masks = segmenter.segment(frames, expr.text, num_frames=args.num_frames, sampling=args.sampling,
                                  prompt_frames=args.prompt_frames, **sasasa2va_options(args, expr))
        masks = checked_masks(masks, frames)
    except (Sa2VAError, ValueError) as exc:
        record.update(error=f"{type(exc).__name__}: {exc}", seconds=round(time.perf_counter() - t0, 3))
        return record
    record["seconds"] = round(time.perf_counter() - t0, 3)
    gt = expr.gt_masks()
    if gt is None or args.save_masks:
        folder = out / "Annotations" / expr.video / expr.eid
        folder.mkdir(parents=True, exist_ok=True)
        for name, mask in zip(expr.frame_names, masks, strict=True):
            write_mask(folder / f"{name}.png", mask)
        record["masks"] = str(folder.relative_to(out))
    if gt is not None:
        sizes = {g.shape for g in gt}
        if sizes != {masks[0].shape}:
            raise DatasetError(f"{expr.key}: ground truth of size {sorted(sizes)}, frames {masks[0].shape}")
        j, f = expression_scores(gt, masks)
        record.update({"J": j, "F": f, "J&F": (j + f) / 2})
    return record


def load_q_frames(path: str) -> dict:
    """SaSaSa2VA's selected_frames.json: {video: {"selected_frames": {eid: [100 frame indices]}}}."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return {(video, str(eid)): list(ids) for video, entry in data.items()
                for eid, ids in entry["selected_frames"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{path}: not a selected_frames.json ({exc})") from exc


def sasasa2va_options(args: argparse.Namespace, expr: Expression) -> dict:
    """mode / q_frame for a SaSaSa2VA checkpoint (nothing when --mode is not given)."""
    if args.mode is None:
        return {}
    if args.mode != "q_frame":
        return {"mode": args.mode}
    key = (expr.video, str(expr.eid))
    if key not in args.q_frames:
        raise ValueError(f"{args.q_frame_file} has no selected frames for {expr.video}/{expr.eid}")
    return {"mode": "q_frame", "q_frame": args.q_frames[key]}


def checked_masks(masks, frames: list[np.ndarray]) -> list[np.ndarray]:
    masks = list(masks)
    if len(masks) != len(frames):
        raise ValueError(f"the model returned {len(masks)} masks for {len(frames)} frames")
    size = frames[0].shape[:2]
    for k, mask in enumerate(masks):
        if np.shape(mask) != size:
            raise ValueError(f"mask {k} is {np.shape(mask)}, the frames are {size}")
    return [np.asarray(m).astype(bool) for m in masks]


def prepare_out(out: Path, options: dict, resume: bool) -> dict[str, dict]:
    """The finished records of a resumed run (by "video/eid"); {} for a fresh one."""
    results_path, summary_path = out / "results.jsonl", out / "summary.json"
    if not resume:
        if results_path.exists() and results_path.stat().st_size:
            raise UsageError(f"{results_path} exists: pass --resume to continue that run, or another --out")
        out.mkdir(parents=True, exist_ok=True)
        results_path.write_text("")
        return {}
    if summary_path.exists():
        try:
            before = json.loads(summary_path.read_text(encoding="utf-8"))["options"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{summary_path} is unreadable ({exc}): cannot check the run's options") from exc
        changed = [f"{k} {before.get(k)!r} -> {options[k]!r}"
                   for k in RESULT_OPTIONS if before.get(k) != options[k]]
        if changed:
            raise UsageError(f"{out} holds a run with other options ({'; '.join(changed)}); use a new --out")
    out.mkdir(parents=True, exist_ok=True)
    results, kept, dropped = {}, [], 0
    lines = results_path.read_text(encoding="utf-8").splitlines() if results_path.exists() else []
    for line in lines:
        try:
            record = json.loads(line)
            results[f"{record['video']}/{record['eid']}"] = record
            kept.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            dropped += 1  # a line cut short when a run was killed
    if dropped:
        print(f"sa2va-i-eval: dropped {dropped} unreadable line(s) of {results_path}", file=sys.stderr)
        tmp = results_path.with_suffix(".tmp")
        tmp.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
        os.replace(tmp, results_path)
    return results


def summarize(expressions: list[Expression], results: dict[str, dict], options: dict, timing: dict) -> dict:
    records = [results[e.key] for e in expressions if e.key in results]
    seconds = [r["seconds"] for r in records if "seconds" in r]
    summary = {"dataset": options["dataset"], "split": options["split"], "model": options["model"],
               "options": options, "protocol": PROTOCOL,
               "expressions": len(expressions), "done": len(records),
               "errors": sum("error" in r for r in records), "complete": len(records) == len(expressions),
               "timing": {**timing, "segment_s_mean": round(float(np.mean(seconds)), 3) if seconds else None}}
    if expressions[0].gt_loader is None:
        summary["submission"] = "Annotations/<video>/<eid>/<frame>.png"
    elif records:
        summary.update(dataset_scores([r.get("J", 0.0) for r in records], [r.get("F", 0.0) for r in records]))
    return summary


def headline(summary: dict) -> str:
    name = f"{summary['dataset']} {summary['split']}".strip()
    count = f"{summary['done']}/{summary['expressions']} expressions, {summary['errors']} errors"
    if "J&F" not in summary:
        return f"{name}: predictions written for {count}"
    return (f"{name}: J {100 * summary['J']:.2f}  F {100 * summary['F']:.2f}  J&F {100 * summary['J&F']:.2f} "
            f"({count})")


def sampling_cell(options: dict) -> str:
    """The summary table's sampling column: Sa2VA-i's sampling, or the SaSaSa2VA mode."""
    return f"SaSaSa2VA {options['mode']}" if options.get("mode") else options["sampling"]


def write_summary(out: Path, summary: dict) -> None:
    """summary.json and summary.md, each replaced atomically."""
    o, t = summary["options"], summary["timing"]
    if "J&F" in summary:
        scores = [f"{100 * summary[k]:.2f}" for k in ("J", "F", "J&F")]
    else:
        scores = ["server" if "submission" in summary else "-"] * 3
    md = [f"# sa2va-i-eval: {summary['dataset']} {summary['split']}".rstrip(), "",
          "| model | frames | sampling | prompt frames | expressions | errors | J | F | J&F |",
          "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |",
          f"| {summary['model']} | {o['num_frames']} | {sampling_cell(o)} | {o['prompt_frames']} | "
          f"{summary['done']}/{summary['expressions']} | {summary['errors']} | {' | '.join(scores)} |", "",
          f"{'Complete' if summary['complete'] else 'Incomplete'} run on {o['device']} ({o['dtype']}), "
          f"data {o['root']}; model load {t.get('load_s', 0)} s, {t.get('segment_s_mean')} s per expression, "
          f"{t.get('wall_s', 0)} s in all (this invocation).", "", f"Protocol: {summary['protocol']}.", ""]
    for name, text in (("summary.json", json.dumps(summary, indent=2) + "\n"), ("summary.md", "\n".join(md))):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out / name)


if __name__ == "__main__":
    raise SystemExit(main())
