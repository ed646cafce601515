"""The segment node on answers beyond "Sure, [SEG].", with the answer rig checkpoint (production settings).

The answer rig (core/checkpoint/answer_rig.py) answers, through ordinary greedy
decoding, by a word of the query: "closest" puts [SEG] right before the stop
word, "dog" gives no [SEG], "moving" never stops. What each test expects is
read from the rig's own definition (``BY_NAME``), never from the node's output.
Only ``max_new_tokens`` is changed, by the test about it.
"""

import pytest
from node_harness import NodeHarness
from rclpy.parameter import Parameter
from test_tracker_helpers import one_torch_thread  # noqa: F401  (autouse: one torch thread on a shared machine)

from sa2va_i_ros.core.checkpoint.answer_rig import BY_NAME, QUERIES
from sa2va_i_ros.core.prompt import SEG_TOKEN
from sa2va_i_ros.msg import TrackEvent

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.fixture(scope="module")
def harness(answer_rig):
    h = NodeHarness(answer_rig, name="rig_node")
    h.start()
    yield h
    h.close()


@pytest.fixture(autouse=True)
def clean(harness):
    """Each test starts with frames buffered, no track, nothing received."""
    harness.publish_frames(0, 6)
    harness.wait_for(lambda: harness.buffered() == 6, "6 frames buffered")
    yield
    harness.node.worker.stop(0)
    harness.wait_for(harness.idle, "the worker to settle")
    harness.node.worker.clear_frames()
    harness.wait_for(harness.idle, "the worker to forget the frames")
    for msgs in harness.got.values():
        msgs.clear()


def started(harness):
    return [e.track_id for e in harness.got["events"] if e.event == TrackEvent.STARTED]


def assert_tracks(harness, query, start):
    """A request for ``query`` starts a track and the next frame comes out with it: the node works."""
    r = harness.segment(query, track=True)
    assert r.success, r.message
    harness.wait_for(lambda: r.track_id in started(harness), "STARTED of the new track")
    n = len(harness.got["objects"])
    harness.track_frames(start, start + 1)
    harness.wait_for(lambda: len(harness.got["objects"]) > n, "objects of the next frame")
    assert [o.track_id for o in harness.got["objects"][-1].objects] == [r.track_id]
    return r


def test_seg_right_before_the_stop_word_starts_a_track(harness):
    rig = BY_NAME["seg_last"]
    assert rig.text.endswith(SEG_TOKEN) and not rig.loop  # what the rig says: [SEG], then the stop word
    r = assert_tracks(harness, QUERIES["seg_last"], 6)
    assert r.answer == rig.text and r.track_id > 0
    assert r.object.query == QUERIES["seg_last"]


def test_no_seg_is_a_clear_reply_without_a_track_and_the_node_keeps_working(harness):
    rig = BY_NAME["no_seg"]
    assert SEG_TOKEN not in rig.text and not rig.loop
    r = harness.segment(QUERIES["no_seg"], track=True)
    assert not r.success and r.track_id == 0
    assert r.answer == rig.text  # the model's own words come back
    assert f"without a {SEG_TOKEN}" in r.message and rig.text in r.message, r.message
    harness.wait_for(harness.idle, "the worker to settle")
    assert harness.node.worker.tracks == {}
    # the next request on the same node works (the answer rig's default answer: one [SEG])
    ok = assert_tracks(harness, QUERIES["one_seg"], 6)
    assert ok.answer == BY_NAME["one_seg"].text
    assert started(harness) == [ok.track_id]  # events arrive in order: none came for the failed request


def test_an_answer_without_end_stops_at_max_new_tokens_and_the_next_request_works(harness):
    rig, k = BY_NAME["endless"], 12
    assert rig.loop and SEG_TOKEN not in rig.text
    assert all(r.successful for r in harness.node.set_parameters([Parameter("max_new_tokens", value=k)]))
    try:
        r = harness.segment(QUERIES["endless"], track=True)
        assert not r.success and r.track_id == 0
        assert r.answer == (rig.text * k).strip()  # exactly k tokens of the rig's loop, then the request ended
        assert f"max_new_tokens ({k})" in r.message, r.message
        harness.wait_for(harness.idle, "the worker to settle")
        assert harness.node.worker.tracks == {}
        ok = assert_tracks(harness, QUERIES["seg_last"], 6)
        assert ok.answer == BY_NAME["seg_last"].text
        assert started(harness) == [ok.track_id]  # events arrive in order: none came for the failed request
    finally:
        harness.node.set_parameters([Parameter("max_new_tokens", value=2048)])

