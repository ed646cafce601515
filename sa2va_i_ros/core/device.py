"""Device and precision choices: cpu/fp32, cuda/fp16, cuda/bf16.

Nothing is hard-coded to CUDA: the model lives where the option says, and
reduced precision runs as Sa2VA does on GPU (weights in that dtype, autocast).
"""

from __future__ import annotations

import contextlib

import torch

DTYPES = {"float32": torch.float32, "fp32": torch.float32,
          "float16": torch.float16, "fp16": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def resolve_auto(device: str, dtype: str) -> tuple[str, str]:
    """``auto`` picks cuda when available, and there bfloat16 (as Sa2VA runs), float32 on cpu."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    return device, dtype


def resolve_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {name!r} (use cpu, cuda or cuda:N)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but this torch build sees no CUDA device "
                         f"(torch {torch.__version__}); use device cpu")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device type {device.type!r} is not supported (cpu or cuda)")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r} (use float32, float16 or bfloat16)")
    dtype = DTYPES[name]
    if dtype != torch.float32 and device.type == "cpu":
        # sam2's layers reach reduced precision only through CUDA autocast (as Sa2VA runs them);
        # CPU autocast mixes float32 activations with bfloat16 norm weights and fails.
        raise ValueError(f"{name} needs a CUDA device; on cpu use float32")
    return dtype


def autocast(device: torch.device, dtype: torch.dtype):
    """Autocast to ``dtype``, as Sa2VA runs SAM2 on GPU; a no-op in float32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
