"""Device and precision choices: cpu/fp32, cuda/fp16, cuda/bf16.

Nothing is hard-coded to CUDA: the model lives where the option says, and
reduced precision runs as Sa2VA does on GPU (weights in that dtype, autocast).

``auto`` takes bfloat16 only on a GPU that computes it natively (compute
capability 8.0 or newer: Ampere, Ada, Hopper, Jetson Orin). Older GPUs (Volta,
Turing: Jetson Xavier, T4, V100) get float16, and there the language model is
kept in float32 (``language_model_dtype``): Qwen2.5 and InternLM2 were trained
in bfloat16, whose range float16 lacks, and their activations can overflow it
(inf/NaN hidden states). The vision tower and SAM2 run in float16, the [SEG]
embedding is computed in float32 and handed to SAM2.
"""

from __future__ import annotations

import contextlib

import torch

DTYPES = {"float32": torch.float32, "fp32": torch.float32,
          "float16": torch.float16, "fp16": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def bf16_native(device: str | torch.device) -> bool:
    """Whether this CUDA device computes bfloat16 natively (not emulated): capability >= 8.0."""
    if torch.version.hip:
        return True
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    index = device.index if device.index is not None else torch.cuda.current_device()
    return torch.cuda.get_device_properties(index).major >= 8


def resolve_auto(device: str, dtype: str) -> tuple[str, str]:
    """``auto``: cuda when available; there bfloat16 (as Sa2VA runs) where native, else float16; cpu float32."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype == "auto":
        if device.startswith("cuda"):
            dtype = "bfloat16" if bf16_native(device) else "float16"
        else:
            dtype = "float32"
    return device, dtype


def language_model_dtype(dtype: torch.dtype) -> torch.dtype:
    """The language model's dtype for a model dtype: float32 instead of float16 (see the module doc)."""
    return torch.float32 if dtype == torch.float16 else dtype


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
