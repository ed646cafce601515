"""The tracker's SAM2 modules as ONNX graphs: export (``sa2va-i-export``) and the onnxruntime backend.

``export_tracker`` writes the five graphs of ``graphs.py`` (image encoder, memory
attention with its rotary encoding in real arithmetic, memory encoder, and the
mask decoder with its prompt encoder, without and with a mask prompt), each with
metadata naming the weights it came from. ``onnx_calls`` gives the view of a
model on which ``Sam2Runner`` runs sam2's own methods with those graphs in place
of the modules (``TrackerConfig(backend="onnxruntime")``). onnx and onnxruntime
are imported only when used. docs/DEPLOYMENT.md has the recipe for TensorRT.
"""

from __future__ import annotations

from pathlib import Path

import torch


def onnx_calls(model, onnx_dir: str | Path = "", device: torch.device | None = None):
    """``model`` with its tracker modules run by onnxruntime (graphs from ``onnx_dir`` or the cache)."""
    from sa2va_i_ros.tracking.onnx.modules import backend_view
    from sa2va_i_ros.tracking.onnx.store import load_graphs

    return backend_view(model, load_graphs(model, onnx_dir, device))


__all__ = ["onnx_calls"]
