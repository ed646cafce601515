"""A SaSaSa2VA checkpoint in the node: its kind read from config.json, grounding through its own pipeline.

The checkpoint is the answer rig converted to SaSaSa2VA's layout (one decoder,
``model_type`` sasasa2va_chat), so one node answers with one [SEG] or with
none. The node runs with its production executor, QoS and queue depth; the
requests go through the perception worker as for Sa2VA-i (docs/SASASA2VA.md,
"In the node").
"""

import pytest
from node_harness import NodeHarness, stamp_ns
from rclpy.parameter import Parameter
from test_tracker_helpers import one_torch_thread  # noqa: F401  (autouse: one torch thread on a shared machine)

from sa2va_i_ros.msg import TrackEvent
from sa2va_i_ros.ros.conversions import stamp_to_ns
from sa2va_i_ros.testing.answer_rig import QUERIES

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from sa2va_i_ros.testing.answer_rig import write_answer_rig
    from sa2va_i_ros.testing.tiny_sasasa2va import to_sasasa2va

    return to_sasasa2va(write_answer_rig(tmp_path_factory.mktemp("sasasa2va_rig")), "qwen_chat")


@pytest.fixture(scope="module")
def harness(checkpoint):
    h = NodeHarness(checkpoint, name="sasasa2va")  # no parameter says which kind it is
    h.start()
    yield h
    h.close()


def index(msg) -> int:
    return (stamp_to_ns(msg.header.stamp) - stamp_ns(0)) // 10**8


def test_a_sasasa2va_track_starts_on_the_window_and_continues_on_live_frames(harness):
    node = harness.node
    assert node.session.engine.kind == "sasasa2va" and "(sasasa2va)" in node._model_state
    harness.publish_frames(0, 12)
    harness.wait_for(lambda: harness.buffered() == 12, "12 frames buffered")
    query = QUERIES["one_seg"]
    res = harness.segment(query)
    assert res.success, res.message
    assert res.answer == "Sure, [SEG]." and list(res.track_ids) == [res.track_id] and res.track_id > 0
    assert list(res.sampled_indices) == [int(i * 12 / 100) for i in range(100)]  # uniform: U(i) = int(i T / 100)
    assert index(res.object) == 11 and res.object.track_id == res.track_id
    harness.wait_for(lambda: [(e.event, e.track_id) for e in harness.got["events"]]
                     == [(TrackEvent.STARTED, res.track_id)], "STARTED")
    harness.track_frames(12, 15)
    harness.wait_for(lambda: {12, 13, 14} <= {index(m) for m in harness.got["objects"]}, "objects of 12..14")
    live = [m for m in harness.got["objects"] if index(m) >= 12]
    assert all([o.track_id for o in m.objects] == [res.track_id] for m in live)

    # errors get a clear reply; the node and its track go on
    no_seg = harness.segment(QUERIES["no_seg"])
    assert not no_seg.success and "without a [SEG]" in no_seg.message and no_seg.answer == "I cannot find it."
    question = harness.segment("which cup is closest?")
    assert not question.success and "'?'" in question.message
    frames = harness.segment(query, num_frames=3)
    assert not frames.success and "100 frames" in frames.message
    assert harness.node.worker.tracks == {res.track_id: query}
    harness.track_frames(15, 16)
    harness.wait_for(lambda: any(index(m) == 15 for m in harness.got["objects"]), "objects of frame 15")
    assert [o.track_id for o in next(m for m in harness.got["objects"] if index(m) == 15).objects] == [res.track_id]

    # the mode is a live parameter; q_frame is refused (its indices are chosen for a known video)
    assert not node.set_parameters([Parameter("sasasa2va_mode", value="q_frame")])[0].successful
    assert node.set_parameters([Parameter("sasasa2va_mode", value="wrap_around")])[0].successful
    try:
        quick = harness.segment("the blue cup", track=False)
        assert quick.success and quick.track_id == 0 and len(quick.objects) == 1
        assert list(quick.sampled_indices) == sorted(i % 16 for i in range(100))  # W: 16 frames buffered
    finally:
        node.set_parameters([Parameter("sasasa2va_mode", value="uniform")])


def test_another_tracker_model_fails_configure_with_the_reason(checkpoint, tmp_path):
    """SaSaSa2VA's one SAM2 both prompts and tracks: a chosen sam2 tracker is refused before the model loads,
    the node stays unconfigured and answers."""
    from sa2va_i_ros.testing.tiny_trackers import write_tiny_tracker_weights

    weights = write_tiny_tracker_weights("sam2.1_hiera_t", tmp_path / "sam2.1_hiera_t.pt")
    h = NodeHarness(checkpoint, name="sasasa2va_tracker", tracker_model="sam2.1_hiera_t",
                    tracker_weights=str(weights))
    try:
        assert h.node.trigger_configure().name == "FAILURE"
        assert "SaSaSa2VA propagates with its own SAM2" in h.node._model_state, h.node._model_state
        r = h.segment(QUERIES["one_seg"])
        assert not r.success and "not configured" in r.message
    finally:
        h.close()
