"""What each exported file says about itself (onnx ``metadata_props``), and the check on load.

A graph is only valid for the weights it was exported from: every file carries
the SHA-256 of the SAM2's tensors (names, dtypes, shapes and bytes, whatever file
format they came from), the config, the input size and the dtype. The runtime
refuses files whose hash or size differ from the model it tracks with.
"""

from __future__ import annotations

import hashlib
import json
import weakref

import torch

from sa2va_i_ros.tracking.models import TrackerModelError

PREFIX = "sa2va_i_ros."
FORMAT_VERSION = "1"
_HASHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def weights_sha256(model: torch.nn.Module) -> str:
    """SHA-256 over the model's state dict in name order (tensor bytes read in place, no copy).

    Computed once per model object (a weights change in place after that is not seen).
    """
    cached = _HASHES.get(model)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            t = tensor.detach().cpu().contiguous()
            digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            if t.numel():
                digest.update(memoryview(t.view(-1).view(torch.uint8).numpy()))
    _HASHES[model] = digest.hexdigest()
    return _HASHES[model]


def graph_metadata(module: str, model_name: str, config: str, sha256: str, image_size: int, opset: int,
                   extra: dict | None = None) -> dict[str, str]:
    """The ``metadata_props`` of one exported graph."""
    import sam2

    from sa2va_i_ros.tracking.onnx.graphs import DYNAMIC_AXES

    meta = {
        "format_version": FORMAT_VERSION,
        "module": module,
        "tracker_model": model_name,
        "config": config,
        "weights_sha256": sha256,
        "input_size": str(image_size),
        "dtype": "float32",
        "opset": str(opset),
        "dynamic_axes": json.dumps(DYNAMIC_AXES),
        "torch": torch.__version__,
        "sam2": getattr(sam2, "__version__", "1.1.0"),
    }
    meta.update({k: str(v) for k, v in (extra or {}).items()})
    return {PREFIX + k: v for k, v in meta.items()}


def read_metadata(path) -> dict[str, str]:
    """This project's ``metadata_props`` of an .onnx file (prefix removed)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return own_metadata({p.key: p.value for p in proto.metadata_props})


def own_metadata(props: dict[str, str]) -> dict[str, str]:
    """The entries of ``props`` this project wrote, prefix removed (onnxruntime's ``custom_metadata_map``)."""
    return {k[len(PREFIX):]: v for k, v in props.items() if k.startswith(PREFIX)}


class OnnxMismatch(TrackerModelError):
    """Exported graphs that do not belong to the model they are asked to run for."""


def check_metadata(meta: dict[str, str], module: str, sha256: str, image_size: int, where: str) -> None:
    """Raise ``OnnxMismatch`` naming the first difference between a file and the model."""
    if meta.get("format_version") != FORMAT_VERSION:
        raise OnnxMismatch(f"{where}: not a graph exported by sa2va-i-export (format "
                           f"{meta.get('format_version')!r}, expected {FORMAT_VERSION})")
    for key, want in (("module", module), ("weights_sha256", sha256), ("input_size", str(image_size)),
                      ("dtype", "float32")):
        if meta.get(key) != want:
            raise OnnxMismatch(f"{where}: {key} is {meta.get(key)!r}, this tracker needs {want!r} "
                               "(exported from other weights or another model? run sa2va-i-export again)")
