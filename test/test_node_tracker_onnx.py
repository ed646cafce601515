"""The node with ``tracker_backend:=onnxruntime``: the exported graphs propagate its live frames.

The tracker file comes from ``sa2va-i-tiny-checkpoint --tracker`` and its graphs from
``sa2va-i-export`` (the tools a user runs). The node's masks and scores on live
frames equal a direct run of the torch tracker loaded from the same file and
seeded with the grounding the node handed its tracker (IoU >= 0.999, scores within
1e-5). Graphs of other weights, and reduced precision with this backend, fail
configure with the reason.
"""

from __future__ import annotations

import shutil

import onnx
import pytest
from node_harness import NodeHarness, stamp_ns
from rclpy.parameter import Parameter
from test_node_tracker_choice import QUERY, _direct, _iou, _node_outputs
from test_tracker_helpers import one_torch_thread  # noqa: F401  (autouse: one torch thread on a shared machine)

from sa2va_i_ros.cli import export, tiny_checkpoint
from sa2va_i_ros.ros.conversions import stamp_to_ns
from sa2va_i_ros.tracking import TrackerChoice
from sa2va_i_ros.tracking.models import load_tracker_model

pytestmark = pytest.mark.ros
NAME = "sam2.1_hiera_t"


@pytest.fixture(scope="module")
def with_graphs(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_with_onnx")
    assert tiny_checkpoint.main([str(out), "--tracker", NAME]) == 0
    weights = out / f"{NAME}.pt"
    assert export.main(["--tracker-model", NAME, "--tracker-weights", str(weights), "--out", str(out / "onnx")]) == 0
    return out, weights, out / "onnx"


def test_the_exported_graphs_propagate_the_live_frames(with_graphs):
    model_dir, weights, graphs = with_graphs
    h = NodeHarness(model_dir, name="tracker_onnx", tracker_model=NAME, tracker_weights=str(weights),
                    tracker_backend="onnxruntime", tracker_onnx_dir=str(graphs))
    try:
        h.start()
        tracker, seeded = h.node.session.tracker, []
        assert tracker.config.backend == "onnxruntime" and tracker.runner.calls is not tracker.sam2
        seed = tracker.seed_steps
        tracker.seed_steps = lambda grounding, **kw: seeded.append(grounding) or seed(grounding, **kw)
        h.publish_frames(0, 5)
        h.wait_for(lambda: h.buffered() == 5, "5 frames buffered")
        r = h.segment(QUERY)
        assert r.success, r.message
        live = range(5, 11)
        h.track_frames(live.start, live.stop)
        h.wait_for(lambda: {stamp_ns(i) for i in live} <= {stamp_to_ns(a.header.stamp) for a in h.got["objects"]},
                   "objects of the 6 live frames")
        node = _node_outputs(h, r.track_id)
        (grounding,) = seeded
        torch_run = _direct(load_tracker_model(TrackerChoice(NAME, str(weights))), grounding, live)
        for i in live:
            mask, score = node[stamp_ns(i)]
            assert _iou(mask, torch_run[i][0]) >= 0.999 and abs(score - torch_run[i][1]) < 1e-5, i
    finally:
        h.close()


def test_graphs_that_do_not_fit_fail_configure_with_the_reason(with_graphs, tmp_path):
    model_dir, weights, graphs = with_graphs
    other = tmp_path / "other"
    shutil.copytree(graphs, other)
    proto = onnx.load(str(other / "memory_encoder.onnx"))
    for prop in proto.metadata_props:
        if prop.key == "sa2va_i_ros.weights_sha256":
            prop.value = "0" * 64  # as if exported from other weights
    onnx.save(proto, str(other / "memory_encoder.onnx"))
    h = NodeHarness(model_dir, name="tracker_onnx_bad", tracker_model=NAME, tracker_weights=str(weights),
                    tracker_backend="onnxruntime", tracker_onnx_dir=str(other))
    try:
        for changes, reason in (({}, "weights_sha256"), ({"tracker_onnx_dir": str(tmp_path / "none")}, "missing"),
                                ({"tracker_onnx_dir": str(graphs), "tracker_dtype": "bfloat16"}, "bfloat16")):
            h.node.set_parameters([Parameter(k, value=v) for k, v in changes.items()])
            assert h.node.trigger_configure().name == "FAILURE", changes
            assert reason in h.node._model_state, (changes, h.node._model_state)
        h.node.set_parameters([Parameter("tracker_dtype", value="auto")])
        h.start()
        assert h.node.session.tracker.config.backend == "onnxruntime"
    finally:
        h.close()
