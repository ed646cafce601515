"""Build the network without random weights, then give each tensor its final dtype and device.

``parameters_on_meta`` makes every parameter created inside it a meta tensor
(shape and dtype, no storage), as accelerate's ``init_empty_weights`` without
buffers does: modules still compute their buffers and constants for real (RoPE
``inv_freq`` in float32, SAM2's axial RoPE tables), so a model built this way
equals the eagerly built one once its weights are read. ``allocate`` then
replaces each meta parameter and persistent buffer by an uninitialised tensor
of the target dtype on the target device (tied parameters stay one tensor),
and the loader fills it from disk. Non-persistent buffers keep their own dtype
(float32 RoPE frequencies) and only move to the device, as ``from_pretrained``
leaves them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn

# name -> (device, dtype) of one tensor
Placement = Callable[[str], tuple[torch.device, torch.dtype]]


# torch.nn.init's in-place initialisers: on a meta tensor they compute nothing, yet cost a Python
# decomposition per call (a third of an empty build's time at 1B size)
INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
                  "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
                  "sparse_")


def _skipping_meta(init: Callable) -> Callable:
    def skip(tensor, *args, **kwargs):
        return tensor if isinstance(tensor, torch.Tensor) and tensor.device.type == "meta" else init(
            tensor, *args, **kwargs)
    return skip


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Every ``nn.Parameter`` registered inside this block is moved to the meta device, never initialised.

    Initialisers of ``torch.nn.init`` return meta tensors untouched, and each meta
    parameter is marked ``_is_hf_initialized`` (transformers' own mark for weights
    that come from a checkpoint), so that ``post_init`` skips it too. Buffers are
    still computed and initialised for real.
    """
    original = nn.Module.register_parameter

    def register(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        original(module, name, param)
        if param is not None:
            if param.device.type != "meta":
                param = module._parameters[name] = type(param)(param.to("meta"), requires_grad=param.requires_grad)
            param._is_hf_initialized = True

    inits = {name: getattr(nn.init, name) for name in INIT_FUNCTIONS if hasattr(nn.init, name)}
    nn.Module.register_parameter = register
    for name, init in inits.items():
        setattr(nn.init, name, _skipping_meta(init))
    try:
        yield
    finally:
        nn.Module.register_parameter = original
        for name, init in inits.items():
            setattr(nn.init, name, init)


def empty(shape: torch.Size, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """One uninitialised tensor (a seam for tests that simulate running out of memory)."""
    return torch.empty(shape, dtype=dtype, device=device)


def _persistent(module: nn.Module, name: str) -> bool:
    return name not in module._non_persistent_buffers_set


def allocate(model: nn.Module, placement: Placement) -> None:
    """Replace meta parameters/persistent buffers by empty tensors where ``placement`` says.

    Floating tensors take the placement's dtype; integer ones keep theirs.
    Non-persistent buffers keep their dtype and move to the placement's device.
    """
    done: dict[int, nn.Parameter] = {}
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        for name, param in list(module._parameters.items()):
            if param is None:
                continue
            if id(param) in done:  # tied: the first name decided where it lives
                module._parameters[name] = done[id(param)]
                continue
            device, dtype = placement(prefix + name)
            if param.device.type == "meta":
                dtype = dtype if param.dtype.is_floating_point else param.dtype
                new = nn.Parameter(empty(param.shape, dtype, device), requires_grad=False)
            else:
                new = nn.Parameter(param.data.to(device=device, dtype=dtype if param.dtype.is_floating_point
                                                 else param.dtype), requires_grad=False)
            done[id(param)] = module._parameters[name] = new
        for name, buf in list(module._buffers.items()):
            if buf is None:
                continue
            device, dtype = placement(prefix + name)
            if _persistent(module, name):
                dtype = dtype if buf.dtype.is_floating_point else buf.dtype
                module._buffers[name] = (empty(buf.shape, dtype, device) if buf.device.type == "meta"
                                         else buf.to(device=device, dtype=dtype))
            elif buf.device.type == "meta":
                raise RuntimeError(f"{prefix}{name}: a computed buffer was left on the meta device")
            else:
                module._buffers[name] = buf.to(device)


def meta_tensors(model: nn.Module) -> list[str]:
    """Names of parameters and buffers still without storage (should be none after loading)."""
    return [n for n, t in [*model.named_parameters(remove_duplicate=False),
                           *model.named_buffers(remove_duplicate=False)] if t.device.type == "meta"]
