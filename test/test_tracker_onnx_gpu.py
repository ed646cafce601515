"""onnxruntime's CUDA and TensorRT providers against torch on a GPU (``-m gpu``; deselected by default).

Not run yet: this project's machines have no GPU. Needs onnxruntime-gpu (and
TensorRT's libraries for the TensorRT provider) in place of onnxruntime. The
graphs are float32; TensorRT builds them in float32 here (its fp16 engines are
docs/DEPLOYMENT.md's recipe, compared there by IoU). Tolerances: CUDA/TensorRT
kernels (TF32 off) reorder float32 sums more than the CPU does: 1e-3.
"""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.gpu


def _needs(provider: str) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    ort = pytest.importorskip("onnxruntime")
    if provider not in ort.get_available_providers():
        pytest.skip(f"{provider} not installed (onnxruntime-gpu)")


@pytest.mark.parametrize("provider", ["CUDAExecutionProvider", "TensorrtExecutionProvider"])
def test_gpu_providers_stream_the_torch_masks(provider, monkeypatch):
    _needs(provider)
    from onnx_helpers import exported
    from test_tracker_onnx_streaming import _stream
    from tracker_model_helpers import product_model

    from sa2va_i_ros.tracking import TrackerConfig
    from sa2va_i_ros.tracking.onnx import session

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    chosen = session.providers_for
    monkeypatch.setattr(session, "providers_for", lambda device, available=None: [
        p for p in chosen(device, available) if p == "CPUExecutionProvider" or p[0] == provider])
    model = product_model("sam2.1_hiera_t").cuda()
    try:
        _, ref = _stream(model, TrackerConfig())
        tracker, got = _stream(model, TrackerConfig(backend="onnxruntime", onnx_dir=str(exported("sam2.1_hiera_t"))))
        assert tracker.runner.calls.image_encoder.graph.providers[0] == provider
        for obj_id in ref:
            for a, b in zip(got[obj_id], ref[obj_id], strict=True):
                inter = (a.mask & b.mask).sum()
                union = (a.mask | b.mask).sum()
                assert union == 0 or inter / union >= 0.99
                assert float((a.logits.cpu() - b.logits.cpu()).abs().max()) <= 1e-3
    finally:
        model.cpu()
