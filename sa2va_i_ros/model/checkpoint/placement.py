"""Where each tensor lives: dtype per part, and the language model split over several GPUs.

The language model of Sa2VA-26B alone is about 40 GB in bfloat16; it can be
spread over GPUs layer by layer (``lm_devices``), as transformers/accelerate's
``device_map`` does for pipeline-free inference: the embeddings, the vision
tower, SAM2 and ``text_hidden_fcs`` stay on the main device, decoder layers
are cut into contiguous blocks, one per device, and the final norm and
``lm_head`` go with the last block. Forward pre-hooks move a layer's inputs to
its device (hidden states, RoPE tables, masks), so transformers' own forward
runs unchanged and each layer's KV cache stays on that layer's device.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torch import nn

from sa2va_i_ros.model.checkpoint.materialise import Placement

_LAYER = re.compile(r"^language_model\.model\.layers\.(\d+)\.")


def split_layers(num_layers: int, devices: Sequence[torch.device],
                 weights: Sequence[float] | None = None) -> list[torch.device]:
    """One device per decoder layer: contiguous blocks, sized in proportion to ``weights``.

    ``weights`` (e.g. each GPU's free memory) default to equal shares. Every
    device gets at least one layer when there are enough layers.
    """
    if not devices:
        raise ValueError("no devices to place the language model on")
    weights = list(weights) if weights is not None else [1.0] * len(devices)
    if len(weights) != len(devices) or any(w <= 0 for w in weights):
        raise ValueError(f"need one positive weight per device, got {weights}")
    total, out, start = sum(weights), [], 0
    for i, dev in enumerate(devices):
        left_devices = len(devices) - i - 1
        if left_devices == 0:
            count = num_layers - start
        else:
            count = round(num_layers * sum(weights[: i + 1]) / total) - start
            count = max(min(count, num_layers - start - left_devices), min(1, num_layers - start))
        out += [dev] * count
        start += count
    return out


def placement(main: torch.device, dtype: torch.dtype, lm_dtype: torch.dtype,
              layer_devices: Sequence[torch.device] | None = None) -> Placement:
    """name -> (device, dtype): language model and text_hidden_fcs in ``lm_dtype``, the rest in ``dtype``."""
    last = layer_devices[-1] if layer_devices else main

    def where(name: str) -> tuple[torch.device, torch.dtype]:
        if not name.startswith(("language_model.", "text_hidden_fcs.")):
            return main, dtype
        if layer_devices:
            m = _LAYER.match(name)
            if m:
                return layer_devices[int(m.group(1))], lm_dtype
            if name.startswith(("language_model.model.norm.", "language_model.lm_head.")):
                return last, lm_dtype
        return main, lm_dtype

    return where


def _move(value, device: torch.device):
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, tuple | list):
        return type(value)(_move(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _move(v, device) for k, v in value.items()}
    return value


def _device_hook(device: torch.device):
    def hook(module: nn.Module, args: tuple, kwargs: dict):
        return _move(args, device), _move(kwargs, device)

    return hook


def add_device_hooks(language_model: nn.Module, layer_devices: Sequence[torch.device]) -> list:
    """Pre-hooks moving each decoder layer's, the final norm's and lm_head's inputs to their device."""
    handles = []
    layers = language_model.model.layers
    if len(layers) != len(layer_devices):
        raise ValueError(f"{len(layer_devices)} devices for {len(layers)} layers")
    for layer, device in zip(layers, layer_devices, strict=True):
        handles.append(layer.register_forward_pre_hook(_device_hook(device), with_kwargs=True))
    for module in (language_model.model.norm, language_model.lm_head):  # a tied lm_head lives with the embeddings
        handles.append(module.register_forward_pre_hook(_device_hook(module.weight.device), with_kwargs=True))
    return handles


def parse_devices(spec: str | Sequence[str] | None) -> list[torch.device]:
    """``"cuda:0,cuda:1"`` (or a list) -> devices; empty -> []."""
    if not spec:
        return []
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s) for s in spec]
    try:
        return [torch.device(n) for n in names if n]
    except RuntimeError as exc:
        raise ValueError(f"bad device list {spec!r} ({exc})") from exc
