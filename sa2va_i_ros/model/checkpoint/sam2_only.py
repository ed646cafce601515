"""Only the SAM2 of a Sa2VA / Sa2VA-i checkpoint (with its original decoder), without the language model.

Tools that need the propagation model alone (``sa2va-i-export``) should not load
a multi-GB language model for it. The same renames as the full load apply
(``keys.map_name``); the SAM2's tensors are read into a ``build_sam2`` model of
the checkpoint's spec, strictly: every parameter filled, nothing mis-shaped.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sa2va_i_ros.errors import CheckpointError, StrictLoadError
from sa2va_i_ros.model.checkpoint import keys, stream
from sa2va_i_ros.model.checkpoint.config import read_config
from sa2va_i_ros.model.checkpoint.load import read_tensor_names, resolve, tensor_files
from sa2va_i_ros.model.sam2_model import build_sam2


def _sam2_entries(directory: Path, name: str, original_sam2: str | Path | None) -> dict[str, stream.Entry]:
    disk = read_tensor_names(tensor_files(directory, name), name)
    sa2va_i = keys.is_sa2va_i(set(disk))
    found = {}
    for disk_name, entry in disk.items():
        ours = keys.map_name(disk_name, sa2va_i)
        if ours is not None and ours.startswith("sam2."):
            found[ours[len("sam2."):]] = entry
    if not sa2va_i:
        if original_sam2 is None:
            raise CheckpointError(f"{name} is a plain Sa2VA checkpoint without SAM2's original decoder: name a "
                                  "SAM 2.0 Hiera-L safetensors file (--original-sam2), or use a Sa2VA-i checkpoint")
        path = Path(original_sam2).expanduser()
        for disk_name, entry in read_tensor_names([path], str(path)).items():
            ours = keys.original_decoder_name(disk_name)
            if ours is not None:
                found[ours[len("sam2."):]] = entry
    return found


@torch.no_grad()
def load_checkpoint_sam2(model: str, original_sam2: str | Path | None = None, revision: str | None = None):
    """The checkpoint's SAM2 (the tracker's ``checkpoint`` model): eval mode, float32, cpu."""
    directory = resolve(model, revision)
    cfg = read_config(directory, model)
    entries = _sam2_entries(directory, model, original_sam2)
    sam2 = build_sam2(cfg.sam2, "cpu")
    params = sam2.state_dict(keep_vars=True)
    missing = sorted(set(params) - set(entries))
    unexpected = sorted(set(entries) - set(params))
    mismatched = sorted(f"{k} {list(e.shape)} vs {list(params[k].shape)}" for k, e in entries.items()
                        if k in params and tuple(params[k].shape) != e.shape)
    if missing or unexpected or mismatched:
        err = StrictLoadError(missing, unexpected, mismatched)
        raise CheckpointError(f"{model}: its SAM2 does not fit the spec: {err}") from err
    stream.read_all([(entry, params[target].data, [(0, entry.rows, 0)]) for target, entry in entries.items()])
    return sam2.eval()
