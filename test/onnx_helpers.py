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
from tracker_model_helpers import product_model, tiny_weights

from sa2va_i_ros.cli.export import main as export_main
from sa2va_i_ros.tracking.onnx.export import export_tracker

_FOLDER = Path(tempfile.mkdtemp(prefix="tracker_onnx_"))
atexit.register(shutil.rmtree, _FOLDER, ignore_errors=True)


@functools.cache
def exported(name: str) -> Path:
    """The five graphs of the tiny test model ``name`` (tracker_model_helpers.product_model).

    sam2 models are exported by the ``sa2va-i-export`` command from the same weights file
    the product path loads (test_tracker_onnx_files.py checks what it wrote).
    """
    if name == "checkpoint":
        return export_dir(product_model(name), name)
    out = _FOLDER / name
    code = export_main(["--tracker-model", name, "--tracker-weights", str(tiny_weights(name)), "--out", str(out)])
    assert code == 0
    return out


def export_dir(model, name: str) -> Path:
    out = _FOLDER / name
    export_tracker(model, out, name, str(getattr(model, "sa2va_i_ros_config", "test")))
    return out


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a.float() - b.float()).abs().max()) if a.numel() else 0.0
