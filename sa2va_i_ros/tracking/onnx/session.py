"""One exported graph run by onnxruntime on torch tensors, without copies where the device allows.

Inputs and outputs are bound to torch memory (``IOBinding``): on the cpu the
graph reads the tensors in place and writes into tensors allocated here; on a
CUDA device the same, on torch's current stream (``user_compute_stream``) and
without onnxruntime's end-of-run stream synchronisation
(``disable_synchronize_execution_providers``): later torch work on that stream
is ordered after the graph anyway, so no synchronisation is added. Output shapes come from the graph's declared
shapes, with each named dynamic axis (``objects``, ...) taken from the inputs.
onnxruntime is imported only here, only when this backend is chosen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def providers_for(device: torch.device, available: list[str] | None = None) -> list:
    """Execution providers for ``device``: the cpu one on a cpu; TensorRT, CUDA, then cpu on a GPU, where installed."""
    import onnxruntime as ort

    available = ort.get_available_providers() if available is None else available
    if device.type != "cuda":
        return ["CPUExecutionProvider"]
    stream = str(torch.cuda.current_stream(device).cuda_stream)
    index = device.index if device.index is not None else torch.cuda.current_device()
    options = {"device_id": str(index), "user_compute_stream": stream, "has_user_compute_stream": "1"}
    chosen: list = [(p, dict(options)) for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider")
                    if p in available]
    if not chosen:
        raise RuntimeError(f"the onnxruntime backend on {device} needs onnxruntime-gpu (CUDA or TensorRT "
                           f"execution provider); installed: {', '.join(available)}")
    return [*chosen, "CPUExecutionProvider"]


class OrtGraph:
    """``graph(**inputs) -> [outputs]`` on torch tensors (float32)."""

    def __init__(self, path: str | Path, device: torch.device, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads if threads is not None else torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.path = Path(path)
        self.device = device
        self.session = ort.InferenceSession(str(path), options, providers=providers_for(device))
        self.run_options = ort.RunOptions()
        if device.type == "cuda":
            self.run_options.add_run_config_entry("disable_synchronize_execution_providers", "1")
        self.inputs = {i.name: i.shape for i in self.session.get_inputs()}
        self.outputs = {o.name: o.shape for o in self.session.get_outputs()}

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def __call__(self, **inputs: torch.Tensor) -> list[torch.Tensor]:
        if set(inputs) != set(self.inputs):
            raise ValueError(f"{self.path.name}: inputs {sorted(inputs)}, the graph takes {sorted(self.inputs)}")
        binding = self.session.io_binding()
        axes: dict[str, int] = {}
        kept = []  # the bound tensors must outlive the run
        for name, tensor in inputs.items():
            t = tensor.detach().to(self.device, torch.float32).contiguous()
            kept.append(t)
            for declared, actual in zip(self.inputs[name], t.shape, strict=True):
                if isinstance(declared, str):
                    axes.setdefault(declared, int(actual))
                elif declared != actual:
                    raise ValueError(f"{self.path.name}: input {name} is {tuple(t.shape)}, "
                                     f"the graph takes {self.inputs[name]}")
            binding.bind_input(name, self.device.type, self._index, np.float32, list(t.shape), t.data_ptr())
        outputs = []
        for name, declared in self.outputs.items():
            shape = [axes[d] if isinstance(d, str) else d for d in declared]
            out = torch.empty(shape, dtype=torch.float32, device=self.device)
            binding.bind_output(name, self.device.type, self._index, np.float32, shape, out.data_ptr())
            outputs.append(out)
        self.session.run_with_iobinding(binding, self.run_options)
        return outputs

    @property
    def _index(self) -> int:
        """The device id onnxruntime binds to (0 on the cpu)."""
        if self.device.type != "cuda":
            return 0
        return self.device.index if self.device.index is not None else torch.cuda.current_device()
