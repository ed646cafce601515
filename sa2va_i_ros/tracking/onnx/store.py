"""Where the exported graphs of a model come from: a given directory, or the cache (exported on first use).

* ``onnx_dir`` given: the five files must be there and carry this model's weights
  hash and input size (``sa2va-i-export`` writes them); anything else is an error
  that names the difference. Nothing is written there.
* ``onnx_dir`` empty: ``$SA2VA_I_ROS_CACHE`` (default ``~/.cache/sa2va_i_ros``)
  ``/onnx/<hash>-<size>/``, exported there the first time (a minute or two for
  Hiera-T on a CPU, more for Hiera-L) and reused afterwards.

Loaded sessions are kept per model and device, so trackers made one after the
other (one per video in the offline tools) load the graphs once.
"""

from __future__ import annotations

import os
import threading
import weakref
from pathlib import Path

import torch

from sa2va_i_ros.tracking.onnx.graphs import GRAPHS
from sa2va_i_ros.tracking.onnx.metadata import OnnxMismatch, check_metadata, own_metadata, weights_sha256
from sa2va_i_ros.tracking.onnx.modules import OnnxGraphs
from sa2va_i_ros.tracking.onnx.session import OrtGraph

_LOADED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def cache_root() -> Path:
    base = os.environ.get("SA2VA_I_ROS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sa2va_i_ros")
    return Path(base) / "onnx"


def model_config(model) -> str:
    """The sam2 config a model was built from (``sam2_model.build_sam2`` notes it), or ""."""
    return str(getattr(model, "sa2va_i_ros_config", ""))


def cache_dir(model) -> Path:
    return cache_root() / f"{weights_sha256(model)[:24]}-{int(model.image_size)}"


def _load(directory: Path, model, device: torch.device) -> OnnxGraphs:
    sha = weights_sha256(model)
    graphs = {}
    for name in GRAPHS:
        path = directory / f"{name}.onnx"
        if not path.is_file():
            raise OnnxMismatch(f"{path}: missing (export the tracker's graphs with sa2va-i-export)")
        graph = OrtGraph(path, device)
        meta = own_metadata(graph.session.get_modelmeta().custom_metadata_map)
        check_metadata(meta, name, sha, int(model.image_size), str(path))
        graphs[name] = graph
    return OnnxGraphs(**graphs)


def load_graphs(model, onnx_dir: str | Path = "", device: torch.device | None = None) -> OnnxGraphs:
    """The graphs of ``model`` on ``device`` (default: the model's), from ``onnx_dir`` or the cache."""
    device = torch.device(device) if device is not None else model.device
    directory = Path(onnx_dir).expanduser() if onnx_dir else cache_dir(model)
    key = (str(directory), str(device))
    with _LOCK:
        per_model = _LOADED.setdefault(model, {})
        if key not in per_model:
            per_model[key] = _load(directory, model, device) if onnx_dir else _cached(directory, model, device)
        return per_model[key]


def _cached(directory: Path, model, device: torch.device) -> OnnxGraphs:
    try:
        return _load(directory, model, device)
    except OnnxMismatch:
        from sa2va_i_ros.tracking.onnx.export import export_tracker

        config = model_config(model)
        export_tracker(model, directory, Path(config).stem or "unknown", config)
        return _load(directory, model, device)
