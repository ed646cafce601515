"""Export one SAM2's tracker modules to ONNX (``graphs.py``), with metadata in every file."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import torch

from sa2va_i_ros.tracking.onnx.graphs import GRAPHS, GraphSpec, graph_specs
from sa2va_i_ros.tracking.onnx.metadata import graph_metadata, weights_sha256

DEFAULT_OPSET = 18  # the exporter's own; 17 (TensorRT 8.6, JetPack 6.0) goes through onnx's version converter


def _dynamic_shapes(spec: GraphSpec):
    dims: dict[str, torch.export.Dim] = {}

    def dim(name: str):
        if name not in dims:
            dims[name] = torch.export.Dim(name, min=1, max=1 << 16)
        return dims[name]

    return {arg: {axis: dim(name) for axis, name in axes.items()} or None
            for arg, axes in zip(spec.input_names, spec.dynamic, strict=True)}


def export_graph(spec: GraphSpec, path: Path, metadata: dict[str, str], opset: int = DEFAULT_OPSET) -> Path:
    """One graph to ``path`` (a single file, weights inside), metadata added."""
    import onnx

    dynamic = _dynamic_shapes(spec)
    quiet = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), torch.no_grad():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        inputs = dict(zip(spec.input_names, spec.inputs, strict=True))
        program = torch.onnx.export(spec.module.eval(), (), kwargs=inputs, dynamo=True, opset_version=opset,
                                    input_names=list(spec.input_names), output_names=list(spec.output_names),
                                    dynamic_shapes=dynamic if any(d is not None for d in dynamic.values()) else None,
                                    external_data=False, optimize=True, verbose=False)
    proto = program.model_proto
    del proto.metadata_props[:]
    for key, value in sorted(metadata.items()):
        proto.metadata_props.add(key=key, value=value)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".onnx.tmp")
    onnx.save_model(proto, str(tmp))
    tmp.replace(path)  # a reader never sees half a file
    return path


def export_tracker(model, out_dir: str | Path, model_name: str, config: str, opset: int = DEFAULT_OPSET,
                   graphs: tuple[str, ...] = GRAPHS, extra: dict | None = None) -> dict[str, Path]:
    """Export ``graphs`` of ``model`` (a sam2 ``SAM2Base``) into ``out_dir``; {graph: path}.

    The model is exported on the cpu in float32 and in eval mode (it is moved
    back where it was afterwards).
    """
    if model.training:
        raise ValueError("export needs the SAM2 model in eval mode")
    if model.binarize_mask_from_pts_for_mem_enc:
        raise ValueError("models with binarize_mask_from_pts_for_mem_enc are not supported (Sa2VA never sets it)")
    out = Path(out_dir)
    device = model.device
    dtype = next(model.parameters()).dtype
    model.to("cpu", torch.float32)
    try:
        sha = weights_sha256(model)
        paths = {}
        for spec in graph_specs(model, graphs):
            meta = graph_metadata(spec.name, model_name, config, sha, int(model.image_size), opset, extra)
            paths[spec.name] = export_graph(spec, out / f"{spec.name}.onnx", meta, opset)
        return paths
    finally:
        model.to(device, dtype)
