"""``sa2va-i-video``: Sa2VA-i (or SaSaSa2VA) on a video file or a frame folder, masks for every frame.

    sa2va-i-video --model kumuji/Sa2VA-i-1B --input clip.mp4 --query "the cup left of the bowl" \
        --query "the bowl" --out out/ [--num-frames 5] [--device cuda]
    sa2va-i-video --model QuanzhuNiu/SaSaSa2VA-4B --mode uniform_plus --input clip.mp4 --query ... --out out/

The checkpoint's config.json picks the pipeline (Sa2VA / Sa2VA-i, or SaSaSa2VA
with its ``--mode``). Writes, per query, ``OUT/<k>_<query>/<frame>.png`` (mono
0/255 mask per frame, of the answer's first [SEG]; each further [SEG] of a
Sa2VA-i answer in ``seg_<j>/``) and ``overlay.mp4`` (every [SEG], unless
--no-overlay), and ``OUT/result.json`` with the answers, the sampled indices and
the timings.

``--tracker-model sam2.1_hiera_t --tracker-weights sam2.1_hiera_tiny.pt`` propagates
with another SAM2 than the checkpoint's (Sa2VA / Sa2VA-i; docs/TRACKER.md);
``--tracker-compile`` and ``--tracker-channels-last`` select the GPU speed paths;
``--tracker-backend onnxruntime`` runs the tracker's exported graphs (``sa2va-i-export``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from tqdm import tqdm

from sa2va_i_ros.errors import Sa2VAError
from sa2va_i_ros.grounding.sasasa2va.modes import MODES as SASASA2VA_MODES
from sa2va_i_ros.imaging.geometry import overlay

TRACKER_MODEL_HELP = ("propagation model: checkpoint (default: the checkpoint's SAM2, exact Sa2VA-i), "
                      "sam2.1_hiera_t/s/b+/l or sam2_hiera_t/s/b+/l")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sa2va-i-video", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="checkpoint directory or Hugging Face hub id")
    p.add_argument("--input", required=True, help="video file or folder of frames")
    p.add_argument("--query", required=True, action="append", help="referring expression (repeatable)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--num-frames", type=int, default=5, help="frames the language model sees (default 5)")
    p.add_argument("--sampling", choices=("uniform", "first"), default="uniform")
    p.add_argument("--prompt-frames", choices=("all", "first"), default="all")
    p.add_argument("--max-new-tokens", type=int, default=2048, help="longest answer (default 2048, as Sa2VA)")
    p.add_argument("--mode", choices=SASASA2VA_MODES, default="uniform",
                   help="SaSaSa2VA checkpoints: inference mode (docs/SASASA2VA.md; default uniform)")
    p.add_argument("--q-frame", default=None,
                   help="--mode q_frame: the 100 frame indices, comma-separated or a JSON list file")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    p.add_argument("--original-sam2", default=None, help="SAM 2.0 safetensors (plain Sa2VA checkpoints only)")
    p.add_argument("--revision", default=None, help="hub revision (branch, tag or commit) of a hub model")
    p.add_argument("--lm-devices", default=None, help="spread the language model over these devices: cuda:0,cuda:1")
    p.add_argument("--tracker-model", default="checkpoint", help=TRACKER_MODEL_HELP)
    p.add_argument("--tracker-weights", default="",
                   help="its weights: a .pt/.safetensors file or a hub id (default: its official hub repository)")
    p.add_argument("--tracker-compile", action="store_true", help="torch.compile the tracker (GPU only)")
    p.add_argument("--tracker-channels-last", action="store_true", help="channels-last tracker (GPU only)")
    p.add_argument("--tracker-backend", default="torch", choices=("torch", "onnxruntime"),
                   help="torch (default: sam2's modules) or onnxruntime (their exported graphs, float32)")
    p.add_argument("--tracker-onnx-dir", default="",
                   help="the graphs from sa2va-i-export (default: exported once into the cache)")
    p.add_argument("--tracker-preprocess", default="pil", choices=("pil", "device"),
                   help="frame resize: pil (exact, default) or device (on the tracker's device)")
    p.add_argument("--max-frames", type=int, default=None, help="read at most this many frames")
    p.add_argument("--no-overlay", action="store_true", help="skip overlay.mp4")
    args = p.parse_args(argv)
    if args.max_new_tokens < 1:
        p.error("--max-new-tokens must be at least 1")
    return args


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:40] or "query"


def q_frame_list(text: str | None) -> list[int] | None:
    if text is None:
        return None
    path = Path(text)
    return [int(i) for i in (json.loads(path.read_text()) if path.is_file() else text.split(","))]


def run_query(pipeline, frames, query: str, args, bar):
    """(masks of every [SEG], the report entry's fields) for one query, by the pipeline's kind."""
    if hasattr(pipeline, "modes"):  # SaSaSa2VA: one mask track (its ten [SEG] are the ten clips')
        r = pipeline.run(frames, query, mode=args.mode, q_frame=q_frame_list(args.q_frame),
                         max_new_tokens=args.max_new_tokens, progress=lambda stage, fraction, detail: bar.update(
                             max(0, round(fraction * len(frames)) - bar.n)))
        return [r.masks], {"answer": r.answer, "mode": r.mode, "sampled_indices": r.sampled_indices,
                           "seg_tokens": r.num_seg, "propagated": len(r.propagated), "timings_ms": r.timings_ms}
    r = pipeline.run(frames, query, num_frames=args.num_frames, sampling=args.sampling,
                     prompt_frames=args.prompt_frames, max_new_tokens=args.max_new_tokens,
                     progress=lambda done, total: bar.update(1))
    return r.seg_masks or [r.masks], {"answer": r.answer, "reason": r.reason,
                                      "sampled_indices": r.sampled_indices, "seg_tokens": len(r.seg_masks),
                                      "timings_ms": r.timings_ms}


def main(argv=None) -> int:
    import torch

    from sa2va_i_ros.offline.media import read_frames, write_mask, write_video
    from sa2va_i_ros.offline.pipeline import load_video_pipeline
    from sa2va_i_ros.tracking import TrackerChoice, TrackerConfig

    args = parse_args(argv)
    out = Path(args.out)
    try:
        q_frame_list(args.q_frame)
        frames, names, fps = read_frames(args.input, args.max_frames)
        t0 = time.perf_counter()
        pipeline = load_video_pipeline(args.model, args.device, args.dtype, args.original_sam2,
                                       revision=args.revision, lm_devices=args.lm_devices,
                                       tracker=TrackerChoice(args.tracker_model, args.tracker_weights))
        if hasattr(pipeline, "tracker_config"):  # Sa2VA / Sa2VA-i: the tracker's speed paths
            pipeline.tracker_config = TrackerConfig(
                dtype=torch.float32 if args.tracker_backend == "onnxruntime" else pipeline.engine.dtype,
                compile=args.tracker_compile, channels_last=args.tracker_channels_last,
                backend=args.tracker_backend, onnx_dir=args.tracker_onnx_dir, preprocess=args.tracker_preprocess)
        elif args.tracker_backend != "torch":
            raise ValueError("--tracker-backend onnxruntime applies to Sa2VA / Sa2VA-i checkpoints only")
        load_ms = (time.perf_counter() - t0) * 1e3
    except (Sa2VAError, ValueError, OSError) as exc:
        print(f"sa2va-i-video: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    report = {"model": args.model, "input": str(args.input), "frames": len(frames), "load_ms": load_ms,
              "options": {"num_frames": args.num_frames, "sampling": args.sampling,
                          "max_new_tokens": args.max_new_tokens,
                          "prompt_frames": args.prompt_frames, "device": args.device, "dtype": args.dtype,
                          "tracker_model": args.tracker_model, "tracker_weights": args.tracker_weights,
                          "tracker_backend": args.tracker_backend},
              "queries": []}
    for k, query in enumerate(args.query):
        bar = tqdm(total=len(frames), desc=f"{query[:30]}", unit="frame")
        try:
            seg_masks, entry = run_query(pipeline, frames, query, args, bar)
        except (Sa2VAError, ValueError) as exc:
            bar.close()
            print(f"sa2va-i-video: {query!r}: {exc}", file=sys.stderr)
            report["queries"].append({"query": query, "error": str(exc)})
            continue
        bar.close()
        folder = out / f"{k}_{slug(query)}"
        folder.mkdir(exist_ok=True)
        segs = []
        for j, masks in enumerate(seg_masks):
            seg_folder = folder if j == 0 else folder / f"seg_{j}"
            seg_folder.mkdir(exist_ok=True)
            for name, mask in zip(names, masks, strict=True):
                write_mask(seg_folder / f"{name}.png", mask)
            segs.append({"masks": str(seg_folder), "frames_with_mask": int(sum(m.any() for m in masks))})
        if not args.no_overlay:
            write_video(folder / "overlay.mp4", [overlay(f, {j + 1: m[t] for j, m in enumerate(seg_masks)})
                                                 for t, f in enumerate(frames)], fps)
        report["queries"].append({"query": query, **entry, "masks": str(folder),
                                  "frames_with_mask": segs[0]["frames_with_mask"], "segs": segs})
        print(f"{query!r}: {entry['answer']!r}, masks in {folder}")
    (out / "result.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all("error" not in q for q in report["queries"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
