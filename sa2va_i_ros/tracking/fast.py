"""GPU speed paths of the tracker, chosen once: torch.compile and channels-last.

Both are opt-in (``TrackerConfig.compile`` / ``channels_last``) and take effect
only on a CUDA device: on a CPU they are switched off and a note says so (the
compiler needs a C++ toolchain and gains little there; channels-last only helps
cuDNN convolutions). Reduced precision is ``TrackerConfig.dtype`` (autocast).

* compile: sam2's ``vos_optimized`` idea, applied to the two modules that cost
  the most per frame: the image encoder (one input shape: compiled once) and
  the memory attention (its memory length changes while memory fills and with
  the number of objects batched: compiled with dynamic shapes). The compiled
  modules wrap the model's own (nothing is replaced on the model, so grounding
  is unaffected); ``StreamingTracker.warm_up`` compiles them before the first query.
* channels-last: the convolutional parts (image encoder, memory encoder) get
  channels-last weights. With the ``checkpoint`` tracker those modules are the
  grounding's too: grounding then runs channels-last as well (same numbers up
  to float rounding).
"""

from __future__ import annotations

import importlib.util
import weakref
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FastPaths:
    """What the runner does: compile and channels-last as resolved for its device, and why not."""

    compile: bool = False
    channels_last: bool = False
    notes: tuple[str, ...] = ()


def resolve_fast_paths(compile: bool, channels_last: bool, device: torch.device,
                       has_triton: bool | None = None) -> FastPaths:
    """The paths that run on ``device`` for what was asked; ``notes`` says what was switched off."""
    notes = []
    if device.type != "cuda":
        if compile:
            notes.append(f"compile is a GPU path: off on {device.type}")
        if channels_last:
            notes.append(f"channels_last is a GPU path: off on {device.type}")
        return FastPaths(False, False, tuple(notes))
    if has_triton is None:
        has_triton = importlib.util.find_spec("triton") is not None
    if compile and not has_triton:
        notes.append("compile needs triton (not installed with this torch): off")
        compile = False
    return FastPaths(bool(compile), bool(channels_last), tuple(notes))


# one compiled pair per model, shared by every tracker on it (a pipeline makes a tracker per video)
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
COMPILE_BACKEND = "inductor"  # torch.compile's default; tests trace on cpu with "eager"


def compiled_modules(model, paths: FastPaths):
    """(image encoder, memory attention) to call: compiled wrappers of the model's modules, or the modules."""
    if not paths.compile:
        return model.image_encoder, model.memory_attention
    if model not in _COMPILED:
        _COMPILED[model] = (torch.compile(model.image_encoder, dynamic=False, backend=COMPILE_BACKEND),
                            torch.compile(model.memory_attention, dynamic=True, backend=COMPILE_BACKEND))
    return _COMPILED[model]


def apply_channels_last(model, paths: FastPaths) -> None:
    """Channels-last weights for the convolutional modules (a no-op unless chosen)."""
    if paths.channels_last:
        model.image_encoder.to(memory_format=torch.channels_last)
        model.memory_encoder.to(memory_format=torch.channels_last)
