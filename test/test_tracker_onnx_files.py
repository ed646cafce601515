"""What ``sa2va-i-export`` writes and how the onnxruntime backend finds and checks it (no GPU)."""

from __future__ import annotations

import json
import shutil

import onnx
import pytest
import torch
from onnx_helpers import exported
from tracker_model_helpers import product_model, tiny_weights

from sa2va_i_ros.cli import export as export_cli
from sa2va_i_ros.model.checkpoint.sam2_only import load_checkpoint_sam2
from sa2va_i_ros.tracking import StreamingTracker, TrackerConfig
from sa2va_i_ros.tracking.onnx import store
from sa2va_i_ros.tracking.onnx.graphs import DYNAMIC_AXES, GRAPHS
from sa2va_i_ros.tracking.onnx.metadata import OnnxMismatch, read_metadata, weights_sha256

NAME = "sam2.1_hiera_t"


def test_the_command_writes_five_graphs_with_their_metadata():
    model = product_model(NAME)
    for graph in GRAPHS:
        path = exported(NAME) / f"{graph}.onnx"
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
        assert proto.opset_import[0].version >= 17
        meta = read_metadata(path)
        assert meta["module"] == graph and meta["tracker_model"] == NAME
        assert meta["config"] == "configs/sam2.1/sam2.1_hiera_t.yaml"
        assert meta["weights_sha256"] == weights_sha256(model) and len(meta["weights_sha256"]) == 64
        assert meta["input_size"] == str(model.image_size) and meta["dtype"] == "float32"
        assert meta["opset"] == str(proto.opset_import[0].version)
        assert meta["source"] == str(tiny_weights(NAME))
        assert json.loads(meta["dynamic_axes"]) == DYNAMIC_AXES


def test_only_named_axes_are_dynamic():
    for graph in GRAPHS:
        proto = onnx.load(str(exported(NAME) / f"{graph}.onnx"), load_external_data=False)
        for value in [*proto.graph.input, *proto.graph.output]:
            names = {d.dim_param for d in value.type.tensor_type.shape.dim if d.dim_param}
            assert names <= set(DYNAMIC_AXES), (graph, value.name, names)
            if graph == "image_encoder":
                assert not names  # batch 1, fixed size: what TensorRT wants


def test_graphs_of_other_weights_are_refused():
    with pytest.raises(OnnxMismatch, match="weights_sha256"):
        StreamingTracker(product_model("checkpoint"), TrackerConfig(backend="onnxruntime",
                                                                    onnx_dir=str(exported(NAME))))


def test_a_missing_graph_is_named(tmp_path):
    for graph in GRAPHS[:-1]:
        shutil.copy(exported(NAME) / f"{graph}.onnx", tmp_path)
    with pytest.raises(OnnxMismatch, match=f"{GRAPHS[-1]}.onnx: missing"):
        store.load_graphs(product_model(NAME), tmp_path)


def test_the_cache_exports_once_then_reuses(tmp_path, monkeypatch):
    model = product_model(NAME)
    monkeypatch.setenv("SA2VA_I_ROS_CACHE", str(tmp_path))
    exports = []

    def fake_export(m, directory, name, config, **_):  # the real export is tested above; here: when it runs
        exports.append((name, config))
        shutil.copytree(exported(NAME), directory)

    monkeypatch.setattr("sa2va_i_ros.tracking.onnx.export.export_tracker", fake_export)
    monkeypatch.setattr(store, "_LOADED", type(store._LOADED)())
    graphs = store.load_graphs(model)
    assert exports == [("sam2.1_hiera_t", "configs/sam2.1/sam2.1_hiera_t.yaml")]
    assert store.cache_dir(model).parent == tmp_path / "onnx"
    assert store.load_graphs(model) is graphs  # loaded once per model
    monkeypatch.setattr(store, "_LOADED", type(store._LOADED)())
    store.load_graphs(model)
    assert len(exports) == 1  # found in the cache


def test_options_the_backend_cannot_run_are_refused():
    with pytest.raises(ValueError, match="float32"):
        TrackerConfig(backend="onnxruntime", dtype="bfloat16")
    with pytest.raises(ValueError, match="torch speed paths"):
        TrackerConfig(backend="onnxruntime", compile=True)
    with pytest.raises(ValueError, match="backend must be"):
        TrackerConfig(backend="tensorflow")


def test_the_checkpoints_sam2_alone_equals_the_engines(tiny_checkpoint, engine):
    sam2 = load_checkpoint_sam2(str(tiny_checkpoint))
    ref = engine.model.sam2.state_dict()
    assert sam2.state_dict().keys() == ref.keys()
    assert all(torch.equal(v, ref[k]) for k, v in sam2.state_dict().items())
    assert weights_sha256(sam2) == weights_sha256(engine.model.sam2)


def test_the_command_exports_the_checkpoints_sam2(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr("sa2va_i_ros.tracking.onnx.export.export_tracker",
                        lambda model, out, name, config, **kw: calls.append((model, name, config, kw)) or {})
    assert export_cli.main(["--model", str(tiny_checkpoint), "--out", str(tmp_path), "--opset", "17"]) == 0
    (_, name, config, kw), = calls
    assert (name, config, kw["opset"]) == ("checkpoint", "configs/sam2/sam2_hiera_l.yaml", 17)
    assert kw["extra"] == {"source": str(tiny_checkpoint)}
    with pytest.raises(SystemExit):
        export_cli.parse_args(["--out", str(tmp_path)])  # the checkpoint's SAM2 needs --model
    assert export_cli.main(["--model", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
    assert "no such checkpoint" in capsys.readouterr().err


def test_the_offline_tools_pass_the_backend_on(tiny_checkpoint, tmp_path):
    from sa2va_i_ros.cli import evaluate

    pipeline = evaluate.load_segmenter(str(tiny_checkpoint), tracker_backend="onnxruntime",
                                       tracker_onnx_dir=str(tmp_path))
    config = pipeline.tracker_config
    assert (config.backend, config.onnx_dir, config.dtype) == ("onnxruntime", str(tmp_path), torch.float32)
    assert evaluate.load_segmenter(str(tiny_checkpoint)).tracker_config.backend == "torch"
