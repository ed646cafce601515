"""Exported graphs of the tracker test models, written once per pytest process (no tests here).

Exporting takes tens of seconds per model (torch's exporter traces, decomposes
and translates every graph), so each model is exported once into a temporary
folder and every onnx test reads it from there.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import torch
from tracker_model_helpers import product_model

from sa2va_i_ros.tracking.onnx.export import export_tracker

_FOLDER = Path(tempfile.mkdtemp(prefix="tracker_onnx_"))
atexit.register(shutil.rmtree, _FOLDER, ignore_errors=True)


@functools.cache
def exported(name: str) -> Path:
    """The five graphs of the tiny test model ``name`` (tracker_model_helpers.product_model)."""
    return export_dir(product_model(name), name)


def export_dir(model, name: str) -> Path:
    out = _FOLDER / name
    export_tracker(model, out, name, str(getattr(model, "sa2va_i_ros_config", "test")))
    return out


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a.float() - b.float()).abs().max()) if a.numel() else 0.0
