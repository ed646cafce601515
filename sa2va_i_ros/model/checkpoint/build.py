"""Build the network empty and read a checkpoint into it: the one load path of the project.

``load_model`` never materialises random weights: the network is built with
meta parameters, every tensor is allocated in its final dtype on its final
device and read from disk (``load.load_weights``). Any failure on the way
(a missing or corrupt file, a missing package, running out of memory) comes
out as a ``CheckpointError`` naming the reason, with the partly built model
released, so a caller such as the node's ``configure`` fails cleanly.
"""

from __future__ import annotations

import gc
import traceback
from collections.abc import Sequence
from pathlib import Path

import torch

from sa2va_i_ros.errors import CheckpointError, ModelLoadError, Sa2VAError
from sa2va_i_ros.model.checkpoint import placement as place
from sa2va_i_ros.model.checkpoint.config import Sa2VAConfig
from sa2va_i_ros.model.checkpoint.load import load_weights


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, torch.OutOfMemoryError | MemoryError) or "out of memory" in text.lower():
        return f"out of memory ({type(exc).__name__}: {text[:300]})"
    if isinstance(exc, ImportError):
        return f"a package is missing ({type(exc).__name__}: {text[:300]})"
    return f"{type(exc).__name__}: {text[:300]}"


def load_failure(name: str, exc: BaseException) -> CheckpointError:
    """A project error for any exception raised while loading; frees what the failed load held."""
    if isinstance(exc, Sa2VAError):
        return exc
    traceback.clear_frames(exc.__traceback__)  # the frames hold the half-built model
    error = ModelLoadError(f"{name}: loading failed: {_reason(exc)}")
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return error


def load_model(cfg: Sa2VAConfig, directory: Path, name: str, device: torch.device, dtype: torch.dtype,
               lm_dtype: torch.dtype | None = None, lm_devices: Sequence[torch.device] = (),
               original_sam2: str | Path | None = None, model_class=None, single_decoder: bool = False):
    """The loaded ``Sa2VAModel`` (eval mode) and the loader's report.

    ``lm_dtype`` (default ``dtype``) is the language model's and text_hidden_fcs'
    dtype; ``lm_devices`` spreads the language model's decoder layers over
    several devices (see ``placement``). ``model_class`` / ``single_decoder``:
    another network of the same layout (SaSaSa2VA's, one SAM2 decoder).
    """
    from sa2va_i_ros.model.sa2va_model import Sa2VAModel

    lm_dtype = lm_dtype or dtype
    net = None
    try:
        net = (model_class or Sa2VAModel)(cfg, empty=True)
        layer_devices = None
        if lm_devices:
            layer_devices = place.split_layers(len(net.language_model.model.layers), list(lm_devices))
        report = load_weights(net, directory, name, original_sam2=original_sam2,
                              placement=place.placement(device, dtype, lm_dtype, layer_devices),
                              single_decoder=single_decoder)
        if layer_devices:
            place.add_device_hooks(net.language_model, layer_devices)
            report["lm_devices"] = [str(d) for d in layer_devices]
        net.eval()
    except Exception as exc:  # every failure becomes a project error (the node stays up, unconfigured)
        net = None  # released before the error travels up with this frame
        raise load_failure(name, exc) from None
    report.update(dtype=str(dtype).removeprefix("torch."), lm_dtype=str(lm_dtype).removeprefix("torch."))
    return net, report
