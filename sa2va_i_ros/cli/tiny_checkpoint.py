"""``sa2va-i-tiny-checkpoint OUT_DIR``: a tiny random-weight checkpoint in the official Sa2VA-i layout.

Loaded by the same code as kumuji/Sa2VA-i-1B; its language model answers
"Sure, [SEG]." through plain greedy decoding (see testing/tiny_sa2va.py). The
masks are random: it exists to test and demonstrate the plumbing without weights.
With ``--answer-rig`` the answer depends on a word of the query instead (two
[SEG], [SEG] last, no [SEG], endless; see testing/answer_rig.py).
With ``--tracker sam2.1_hiera_t`` (repeatable) it also writes OUT_DIR/sam2.1_hiera_t.pt,
a tiny random-weight version of that sam2 model in sam2's official file layout, for
``tracker_model:=sam2.1_hiera_t tracker_weights:=OUT_DIR/sam2.1_hiera_t.pt``.
"""

from __future__ import annotations

import argparse

from sa2va_i_ros.testing.tiny_sa2va import DEFAULT_ANSWER, write_tiny_checkpoint


def _rig_help() -> str:
    from sa2va_i_ros.testing.answer_rig import ANSWERS

    cases = "; ".join(f"{a.trigger or '(no trigger word)'} -> {a.text!r}{' repeated' if a.loop else ''}"
                      for a in ANSWERS)
    return f"answer by a word of the query: {cases}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="sa2va-i-tiny-checkpoint", description=__doc__.split("\n")[0])
    p.add_argument("out_dir")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--answer", default=DEFAULT_ANSWER, help=f"what the model says (default {DEFAULT_ANSWER!r})")
    p.add_argument("--answer-rig", action="store_true", help=_rig_help())
    p.add_argument("--hiera-l", action="store_true",
                   help="with --answer-rig: the real-size SAM 2.0 Hiera-L (no SAM2 entry in config.json, as an "
                        "official checkpoint; ~450 MB) instead of a tiny SAM2")
    p.add_argument("--plain-sa2va", action="store_true",
                   help="plain Sa2VA layout (finetuned decoder only) + sam2_original.safetensors")
    p.add_argument("--family", choices=("qwen2", "internlm2"), default="qwen2",
                   help="language model: qwen2 (Sa2VA-i-1B/4B layout) or internlm2 (Sa2VA-i-8B/26B layout)")
    p.add_argument("--vision", choices=("300m", "6b"), default="300m",
                   help="vision tower layout for --family internlm2: InternViT-300M (8B) or InternViT-6B (26B)")
    p.add_argument("--tracker", action="append", default=[], metavar="NAME",
                   help="also write OUT_DIR/NAME.pt: a tiny random sam2 tracker model (sam2.1_hiera_t/s/b+/l, "
                        "sam2_hiera_t/s/b+/l) for the tracker_model / tracker_weights parameters")
    args = p.parse_args(argv)
    from sa2va_i_ros.tracking.models import TRACKER_MODELS

    unknown = [n for n in args.tracker if n not in TRACKER_MODELS]
    if unknown:
        p.error(f"unknown tracker model(s) {', '.join(unknown)}; choose from {', '.join(TRACKER_MODELS)}")
    code = _write(p, args)
    if code == 0 and args.tracker:
        from pathlib import Path

        from sa2va_i_ros.testing.tiny_trackers import write_tiny_tracker_weights

        for name in args.tracker:
            path = write_tiny_tracker_weights(name, Path(args.out_dir) / f"{name}.pt", seed=args.seed)
            print(f"wrote a tiny {name} tracker model to {path} (random weights)")
    return code


def _write(p: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.answer_rig:
        if args.plain_sa2va or args.answer != DEFAULT_ANSWER or args.family != "qwen2":
            p.error("--answer-rig chooses its own answers and writes the Sa2VA-i layout")
        from sa2va_i_ros.model.sam2_model import Sam2Spec
        from sa2va_i_ros.testing.answer_rig import write_answer_rig

        out = write_answer_rig(args.out_dir, seed=args.seed, **({"spec": Sam2Spec()} if args.hiera_l else {}))
        print(f"wrote the tiny answer-rig checkpoint to {out} (random weights, answers by query word)")
        return 0
    if args.hiera_l:
        p.error("--hiera-l goes with --answer-rig")
    if args.family == "internlm2":
        from sa2va_i_ros.testing.tiny_internlm2 import write_tiny_internlm2_checkpoint

        out = write_tiny_internlm2_checkpoint(args.out_dir, seed=args.seed, answer=args.answer, vision=args.vision)
        print(f"wrote a tiny Sa2VA-i-{'26B' if args.vision == '6b' else '8B'}-layout checkpoint to {out} "
              "(random weights)")
        return 0
    out = write_tiny_checkpoint(args.out_dir, seed=args.seed, answer=args.answer, sa2va_i=not args.plain_sa2va)
    print(f"wrote a tiny {'Sa2VA' if args.plain_sa2va else 'Sa2VA-i'} checkpoint to {out} (random weights)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
