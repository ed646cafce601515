"""``sa2va-i-export``: the tracker's SAM2 modules as ONNX graphs, for onnxruntime or TensorRT.

    sa2va-i-export --model kumuji/Sa2VA-i-1B --out onnx/checkpoint/          # the checkpoint's own SAM2
    sa2va-i-export --tracker-model sam2.1_hiera_t --tracker-weights sam2.1_hiera_tiny.pt --out onnx/t/

Writes ``image_encoder.onnx``, ``memory_attention.onnx``, ``memory_encoder.onnx``,
``mask_decoder.onnx`` and ``mask_decoder_mask_prompt.onnx`` (float32, opset 18 by
default; ``--opset 17`` for TensorRT 8.6 / JetPack 6.0), each with metadata: the
config, the SHA-256 of the weights, the input size and dtype. The node
(``tracker_backend:=onnxruntime tracker_onnx_dir:=onnx/t/``), ``sa2va-i-video`` and
``sa2va-i-eval`` (``--tracker-backend onnxruntime --tracker-onnx-dir``) refuse
graphs of other weights. docs/DEPLOYMENT.md has the TensorRT recipe.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from sa2va_i_ros.errors import Sa2VAError

TRACKER_MODEL_HELP = "checkpoint (the --model checkpoint's SAM2, default), sam2.1_hiera_t/s/b+/l or sam2_hiera_t/s/b+/l"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sa2va-i-export", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="output folder for the five .onnx files")
    p.add_argument("--model", default=None,
                   help="Sa2VA-i checkpoint directory or hub id (for --tracker-model checkpoint)")
    p.add_argument("--original-sam2", default=None, help="SAM 2.0 safetensors (plain Sa2VA checkpoints only)")
    p.add_argument("--revision", default=None, help="hub revision of a hub model")
    p.add_argument("--tracker-model", default="checkpoint", help=TRACKER_MODEL_HELP)
    p.add_argument("--tracker-weights", default="",
                   help="its weights: a .pt/.safetensors file or a hub id (default: its official hub repository)")
    p.add_argument("--opset", type=int, default=18, choices=(17, 18), help="ONNX opset (default 18)")
    args = p.parse_args(argv)
    if args.tracker_model == "checkpoint" and not args.model:
        p.error("--model is needed to export the checkpoint's SAM2 (or choose a --tracker-model)")
    return args


def load_model(args):
    """(SAM2, tracker model name, config) the arguments name."""
    from sa2va_i_ros.tracking.models import TrackerChoice, load_tracker_model

    choice = TrackerChoice(args.tracker_model, args.tracker_weights)
    if choice.is_checkpoint:
        from sa2va_i_ros.model.checkpoint.sam2_only import load_checkpoint_sam2

        sam2 = load_checkpoint_sam2(args.model, args.original_sam2, args.revision)
        return sam2, "checkpoint", sam2.sa2va_i_ros_config
    return load_tracker_model(choice), choice.model, choice.info.config


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        from sa2va_i_ros.tracking.onnx.export import export_tracker

        t0 = time.perf_counter()
        model, name, config = load_model(args)
        source = args.model if name == "checkpoint" else (args.tracker_weights or "official hub weights")
        paths = export_tracker(model, args.out, name, config, opset=args.opset, extra={"source": str(source)})
    except (Sa2VAError, ValueError, OSError) as exc:
        print(f"sa2va-i-export: {exc}", file=sys.stderr)
        return 2
    summary = {"tracker_model": name, "config": config, "input_size": int(model.image_size),
               "seconds": round(time.perf_counter() - t0, 1),
               "files": {k: {"path": str(v), "megabytes": round(Path(v).stat().st_size / 2**20, 1)}
                         for k, v in paths.items()}}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
