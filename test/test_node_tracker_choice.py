"""The node's tracker_model / tracker_weights / speed-path parameters (issue 12), with production settings.

The tiny tracker file comes from ``sa2va-i-tiny-checkpoint --tracker NAME`` (the
tool a user runs). The node's masks and scores on the live frames are compared
with a direct run of that tracker, loaded from the same file, seeded with the
grounding the node handed its tracker (recorded by a spy that changes nothing),
and with the checkpoint's own SAM2 (the default), which must differ.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from frames import frame_rgb
from node_harness import SIZE, NodeHarness, stamp_ns
from rclpy.parameter import Parameter
from test_tracker_helpers import one_torch_thread  # noqa: F401  (autouse: one torch thread on a shared machine)

from sa2va_i_ros.cli import tiny_checkpoint
from sa2va_i_ros.ros.conversions import stamp_to_ns
from sa2va_i_ros.testing.tiny_trackers import write_tiny_tracker_weights
from sa2va_i_ros.tracking import StreamingTracker, TrackerChoice, TrackerConfig
from sa2va_i_ros.tracking.models import load_tracker_model

pytestmark = pytest.mark.ros
QUERY = "the cup left of the bowl"
NAME = "sam2.1_hiera_t"


@pytest.fixture(scope="module")
def with_tracker(tmp_path_factory):
    """A tiny checkpoint and a tiny SAM 2.1 Hiera-T file beside it, written by the user's tool."""
    out = tmp_path_factory.mktemp("tiny_with_tracker")
    assert tiny_checkpoint.main([str(out), "--tracker", NAME]) == 0
    return out, out / f"{NAME}.pt"


def _node_outputs(h: NodeHarness, track_id: int) -> dict[int, tuple[np.ndarray, float]]:
    out = {}
    for arr in h.got["objects"]:
        (obj,) = [o for o in arr.objects if o.track_id == track_id]
        out[stamp_to_ns(arr.header.stamp)] = (np.frombuffer(bytes(obj.mask.data), np.uint8).reshape(SIZE) > 0,
                                              float(obj.score))
    return out


def _direct(sam2, grounding, live: range) -> dict[int, tuple[np.ndarray, float]]:
    """The tracker run by hand: seeded with ``grounding``'s frames and masks as the session seeds (every
    prompt; the tracker encodes every frame itself), then stepped."""
    tracker = StreamingTracker(sam2, TrackerConfig(prompt_policy="all", max_prompt_frames=64))
    added = tracker.add_object(replace(grounding, raw_features=None, pixels=None))
    out = {}
    for i in live:
        r = tracker.step(frame_rgb(i), i).objects[added.obj_id]
        out[i] = (r.mask, r.score)
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return 1.0 if union == 0 else float((a & b).sum() / union)


def test_the_chosen_tracker_propagates_the_live_frames(with_tracker):
    model_dir, weights = with_tracker
    h = NodeHarness(model_dir, name="tracker_choice", tracker_model=NAME, tracker_weights=str(weights))
    try:
        h.start()
        assert f"tracker {NAME}" in h.node._model_state
        tracker, seeded = h.node.session.tracker, []
        seed = tracker.seed_steps

        def spy(grounding, **kw):
            seeded.append(grounding)
            return seed(grounding, **kw)

        tracker.seed_steps = spy
        h.publish_frames(0, 5)
        h.wait_for(lambda: h.buffered() == 5, "5 frames buffered")
        r = h.segment(QUERY)
        assert r.success, r.message
        assert list(r.sampled_indices) == [0, 1, 2, 3, 4]  # every window frame prompts: no catch-up to thin
        live = range(5, 11)
        h.track_frames(live.start, live.stop)
        h.wait_for(lambda: {stamp_ns(i) for i in live} <= {stamp_to_ns(a.header.stamp) for a in h.got["objects"]},
                   "objects of the 6 live frames")
        node = _node_outputs(h, r.track_id)
        (grounding,) = seeded
        chosen = _direct(load_tracker_model(TrackerChoice(NAME, str(weights))), grounding, live)
        default = _direct(h.node.session.engine.model.sam2, grounding, live)
        for i in live:
            mask, score = node[stamp_ns(i)]
            assert _iou(mask, chosen[i][0]) >= 0.999 and abs(score - chosen[i][1]) < 1e-5, i
        assert max(abs(node[stamp_ns(i)][1] - default[i][1]) for i in live) > 1e-3, \
            "the node's outputs are the default tracker's"
        assert grounding.raw_features is None or all(f is None for f in grounding.raw_features), \
            "the grounding's Hiera-L features were handed to another SAM2"
    finally:
        h.close()


def test_a_tracker_that_cannot_be_built_fails_configure_with_the_reason(with_tracker, tmp_path):
    """An unknown name, a missing, corrupt or mismatched weights file, weights for the checkpoint tracker, and
    (on a CPU) compile, channels-last or reduced precision: configure fails saying why, the node keeps
    answering, and once fixed it configures."""
    model_dir, weights = with_tracker
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    sam2_0 = write_tiny_tracker_weights("sam2_hiera_t", tmp_path / "sam2_hiera_t.pt")  # SAM 2.0 for a 2.1 model
    # a name outside the choices reaches configure only through start-up overrides (a launch argument)
    h = NodeHarness(model_dir, name="tracker_bad", tracker_model="sam3_hiera_t")
    try:
        cases = [({}, "unknown tracker model 'sam3_hiera_t'"),
                 ({"tracker_model": NAME, "tracker_weights": str(tmp_path / "missing.pt")}, "no such file"),
                 ({"tracker_weights": str(corrupt)}, "not a weights-only torch file"),
                 ({"tracker_weights": str(sam2_0)}, "missing"),
                 ({"tracker_model": "checkpoint"}, "only for a sam2 tracker model")]
        if not torch.cuda.is_available():
            cases += [({"tracker_weights": "", "tracker_compile": True}, "tracker_compile cannot run on device cpu"),
                      ({"tracker_compile": False, "tracker_channels_last": True},
                       "tracker_channels_last cannot run on device cpu"),
                      ({"tracker_channels_last": False, "tracker_dtype": "float16"}, "float16 needs a CUDA device")]
        for changes, reason in cases:
            results = h.node.set_parameters([Parameter(k, value=v) for k, v in changes.items()])
            assert all(res.successful for res in results), results
            assert h.node.trigger_configure().name == "FAILURE", changes
            assert "configure failed" in h.node._model_state and reason in h.node._model_state, \
                (changes, h.node._model_state)
            r = h.segment(QUERY)  # the process is alive and answers
            assert not r.success and "not configured" in r.message
        refused = h.node.set_parameters([Parameter("tracker_model", value="sam3_hiera_t")])[0]
        assert not refused.successful and "one of" in refused.reason  # ros2 param set is checked at once
        h.node.set_parameters([Parameter("tracker_dtype", value="auto"), Parameter("tracker_model", value=NAME),
                               Parameter("tracker_weights", value=str(weights))])
        h.start()
        assert f"tracker {NAME}" in h.node._model_state
        h.publish_frames(0, 3)
        h.wait_for(lambda: h.buffered() == 3, "3 frames buffered")
        assert h.segment(QUERY).success
    finally:
        h.close()
