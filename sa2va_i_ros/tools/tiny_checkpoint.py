"""``sa2va-i-tiny-checkpoint OUT_DIR``: a tiny random-weight checkpoint in the official Sa2VA-i layout.

Loaded by the same code as kumuji/Sa2VA-i-1B; its language model answers
"Sure, [SEG]." through plain greedy decoding (see core/checkpoint/tiny.py). The
masks are random: it exists to test and demonstrate the plumbing without weights.
"""

from __future__ import annotations

import argparse

from sa2va_i_ros.core.checkpoint.tiny import DEFAULT_ANSWER, write_tiny_checkpoint


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="sa2va-i-tiny-checkpoint", description=__doc__.split("\n")[0])
    p.add_argument("out_dir")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--answer", default=DEFAULT_ANSWER, help=f"what the model says (default {DEFAULT_ANSWER!r})")
    p.add_argument("--plain-sa2va", action="store_true",
                   help="plain Sa2VA layout (finetuned decoder only) + sam2_original.safetensors")
    args = p.parse_args(argv)
    out = write_tiny_checkpoint(args.out_dir, seed=args.seed, answer=args.answer, sa2va_i=not args.plain_sa2va)
    print(f"wrote a tiny {'Sa2VA' if args.plain_sa2va else 'Sa2VA-i'} checkpoint to {out} (random weights)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
