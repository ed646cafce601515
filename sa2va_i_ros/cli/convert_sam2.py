"""``sa2va-i-convert-sam2 sam2_hiera_large.pt OUT.safetensors``: SAM 2.0 weights for plain Sa2VA checkpoints.

A plain Sa2VA checkpoint (ByteDance/Sa2VA-*) holds only the finetuned mask
decoder; Sa2VA-i propagates with the ORIGINAL SAM 2.0 Hiera-L decoder, which
comes from Meta's ``sam2_hiera_large.pt``. That file is a torch pickle; the
product only loads safetensors, so convert it once. The conversion reads the
file with ``torch.load(weights_only=True)`` (tensors and plain containers only,
no code), keeps the ``model`` state dict under its sam2-package names, and
writes safetensors. Then: ``original_sam2:=OUT.safetensors`` (node) or
``--original-sam2 OUT.safetensors`` (CLIs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def convert(src: Path, dst: Path) -> int:
    import torch
    from safetensors.torch import save_file

    try:
        data = torch.load(str(src), map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt file or one that is not plain tensors
        raise ValueError(f"{src}: not a readable weights-only torch checkpoint ({exc})") from exc
    state = data.get("model", data) if isinstance(data, dict) else None
    if not isinstance(state, dict) or not any(k.startswith("sam_mask_decoder.") for k in state):
        raise ValueError(f"{src}: no SAM2 state dict with sam_mask_decoder.* tensors inside")
    tensors = {k: v.contiguous() for k, v in state.items() if isinstance(v, torch.Tensor)}
    save_file(tensors, str(dst), metadata={"format": "pt", "source": src.name})
    return len(tensors)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="sa2va-i-convert-sam2", description=__doc__.split("\n")[0])
    p.add_argument("src", type=Path, help="sam2_hiera_large.pt (SAM 2.0, not 2.1)")
    p.add_argument("dst", type=Path, help="output .safetensors")
    args = p.parse_args(argv)
    try:
        n = convert(args.src, args.dst)
    except (ValueError, OSError) as exc:
        print(f"sa2va-i-convert-sam2: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {n} tensors to {args.dst}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
