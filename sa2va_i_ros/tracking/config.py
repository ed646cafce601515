"""Tracker options, validated once so that a bad option fails at start-up, not mid-stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from sa2va_i_ros.model.device import DTYPES

PromptPolicy = Literal["all", "first"]
GapPolicy = Literal["catch_up", "skip"]
Backend = Literal["torch", "onnxruntime"]
BACKENDS = ("torch", "onnxruntime")
Preprocess = Literal["pil", "device"]
PREPROCESS = ("pil", "device")

# A stream has no length. sam2 only uses ``num_frames`` through
# ``min(num_frames, max_obj_ptrs_in_encoder)`` (and a ``t >= num_frames`` bound that
# forward tracking never reaches), so any value >= max_obj_ptrs_in_encoder means
# "the object-pointer window is always full". See docs/TRACKER.md for when this
# equals offline propagation.
STREAM_NUM_FRAMES = 1 << 30

def as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """Accept a torch dtype or its usual name (ROS parameters are strings)."""
    if isinstance(dtype, torch.dtype):
        resolved = dtype
    elif isinstance(dtype, str) and dtype.lower() in DTYPES:
        resolved = DTYPES[dtype.lower()]
    else:
        raise ValueError(f"dtype must be float32, bfloat16 or float16; got {dtype!r}")
    if resolved not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"dtype must be float32, bfloat16 or float16; got {dtype!r}")
    return resolved


@dataclass(frozen=True)
class TrackerConfig:
    """How the streaming tracker prompts, joins the stream and reports presence.

    * ``prompt_policy``: ``"all"`` seeds SAM2 with every sampled mask (Sa2VA-i's
      code); ``"first"`` with the mask of the earliest sampled frame only (the
      paper's Table 6).
    * ``gap_policy``: what a new object does with frames that arrived after its
      grounding window: ``"catch_up"`` tracks them all in order (equal to offline
      propagation over window + later frames), ``"skip"`` tracks only the newest.
    * ``threshold`` / ``lost_after`` / ``found_after``: presence hysteresis on
      ``score = sigmoid(object_score_logits)``.
    * ``dtype``: float32 runs plainly; bfloat16/float16 run under autocast on the
      model's device type (memory features are stored as bfloat16 either way, as
      sam2's video predictor does).
    * ``max_prompt_frames``: cap on the distinct conditioning frames of one
      object (they are kept for the object's lifetime and attended on every frame).
    * ``num_frames``: the video length told to sam2 (see ``STREAM_NUM_FRAMES``).
    * ``compile`` / ``channels_last``: GPU speed paths (``fast.py``); off on a CPU
      whatever is asked (``StreamingTracker.fast_paths.notes`` says so).
    * ``backend``: ``"torch"`` runs sam2's modules; ``"onnxruntime"`` runs their
      exported graphs (``tracking/onnx``; float32, no compile/channels-last), with
      everything between the modules (memory bank, pointers, prompts) the same
      Python code. ``onnx_dir``: the exported graphs (``sa2va-i-export``); empty:
      exported once into the cache directory (``onnx/store.py``).
    * ``preprocess``: ``"pil"`` resizes frames as Sa2VA does (exact); ``"device"``
      uploads the uint8 frame and resizes it on the model's device
      (``device_pixels.py``: faster on a GPU, masks within a measured IoU).
    """

    prompt_policy: PromptPolicy = "all"
    gap_policy: GapPolicy = "catch_up"
    threshold: float = 0.5
    lost_after: int = 5
    found_after: int = 1
    dtype: torch.dtype | str = torch.float32
    max_prompt_frames: int = 32
    num_frames: int = STREAM_NUM_FRAMES
    compile: bool = False
    channels_last: bool = False
    backend: Backend = "torch"
    onnx_dir: str = ""
    preprocess: Preprocess = "pil"

    def __post_init__(self) -> None:
        if self.prompt_policy not in ("all", "first"):
            raise ValueError(f"prompt_policy must be 'all' or 'first'; got {self.prompt_policy!r}")
        check_gap_policy(self.gap_policy)
        if not 0.0 <= float(self.threshold) <= 1.0:  # 0: never lost; 1: seen only on a certain frame
            raise ValueError(f"threshold must be in [0, 1]; got {self.threshold!r}")
        for name in ("lost_after", "found_after", "max_prompt_frames", "num_frames"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
        for name in ("compile", "channels_last"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false; got {getattr(self, name)!r}")
        object.__setattr__(self, "dtype", as_dtype(self.dtype))
        check_backend(self.backend, self.dtype, self.compile, self.channels_last)
        if self.preprocess not in PREPROCESS:
            raise ValueError(f"preprocess must be one of {', '.join(PREPROCESS)}; got {self.preprocess!r}")
        if not isinstance(self.onnx_dir, str):
            raise ValueError(f"onnx_dir must be a path (str); got {self.onnx_dir!r}")


def check_backend(backend: str, dtype: torch.dtype, compile: bool = False, channels_last: bool = False) -> str:
    """``backend`` if it can run with these options, else a ValueError saying why."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if backend == "onnxruntime":
        if dtype != torch.float32:
            raise ValueError("the onnxruntime backend runs the exported float32 graphs: use dtype float32 "
                             "(reduced precision is a TensorRT engine build, docs/DEPLOYMENT.md)")
        if compile or channels_last:
            raise ValueError("compile and channels_last are torch speed paths: off with the onnxruntime backend")
    return backend


def check_gap_policy(policy: str) -> str:
    if policy not in ("catch_up", "skip"):
        raise ValueError(f"gap_policy must be 'catch_up' or 'skip'; got {policy!r}")
    return policy
