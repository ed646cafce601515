"""How checkpoints were loaded before the empty-build load path (the benchmark's reference).

The network is built eagerly (random float32 weights), every tensor is read
from the memory-mapped shard with safetensors' ``get_tensor`` and copied into
its parameter, then the whole model is cast to the run dtype
(``net.to(dtype)``). Kept only to measure the difference side by side.
"""

from __future__ import annotations

from pathlib import Path

import torch


@torch.no_grad()
def load_todays_way(cfg, directory: Path, dtype: torch.dtype):
    from safetensors import safe_open

    from sa2va_i_ros.model.checkpoint import keys
    from sa2va_i_ros.model.checkpoint.load import layout_of, read_tensor_names, tensor_files
    from sa2va_i_ros.model.sa2va_model import Sa2VAModel

    net = Sa2VAModel(cfg)
    disk = read_tensor_names(tensor_files(directory, "bench"), "bench")
    layout = layout_of(net, set(disk))
    params = net.state_dict(keep_vars=True)
    by_file: dict[Path, list] = {}
    for entry in disk.values():
        by_file.setdefault(entry.file, []).append(entry)
    for file, entries in by_file.items():
        with safe_open(str(file), framework="pt") as f:
            for entry in entries:
                tensor = f.get_tensor(entry.name)
                for target, pieces in keys.targets(entry.name, entry.shape, layout):
                    dest = params[target].data
                    for src, n, dst in pieces:
                        dest[dst:dst + n].copy_(tensor[src:src + n])
    return net.to(dtype=dtype)
