"""The segment node on answers beyond "Sure, [SEG].", with the answer rig checkpoint (production settings).

The answer rig (testing/answer_rig.py) answers, through ordinary greedy
decoding, by a word of the query: "closest" puts [SEG] right before the stop
word, "dog" gives no [SEG], "moving" never stops, "and" gives two [SEG] (one track
each, with its own id). What each test expects is
read from the rig's own definition (``BY_NAME``), never from the node's output.
Only ``max_new_tokens`` is changed, by the test about it.
"""

import threading

import pytest
from node_harness import NodeHarness, stamp_ns
from rclpy.parameter import Parameter
from test_tracker_helpers import one_torch_thread  # noqa: F401  (autouse: one torch thread on a shared machine)

from sa2va_i_ros.action import SegmentAndTrack
from sa2va_i_ros.model.prompt import SEG_TOKEN
from sa2va_i_ros.msg import TrackEvent
from sa2va_i_ros.ros.conversions import stamp_to_ns
from sa2va_i_ros.testing.answer_rig import BY_NAME, QUERIES

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


def stopped(harness):
    return [e.track_id for e in harness.got["events"] if e.event == TrackEvent.STOPPED]


def index(msg) -> int:
    """The frame number of an output (stamp_ns(i) = 100 s + i / 10 s)."""
    return (stamp_to_ns(msg.header.stamp) - stamp_ns(0)) // 10**8


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


# -- several [SEG] in one answer: one track each ----------------------------------------------------------
TWO = QUERIES["two_seg"]  # "the cup and the bowl"


def test_two_seg_give_two_tracks_with_their_own_ids_on_every_later_frame(harness):
    before = harness.segment("the red cup")  # one [SEG]: one track, from the node's lifetime counter
    assert before.success and list(before.track_ids) == [before.track_id]
    res = harness.segment(TWO)
    assert res.success, res.message
    assert res.answer == BY_NAME["two_seg"].text and res.answer.count(SEG_TOKEN) == 2
    ids = list(res.track_ids)
    assert len(ids) == 2 and len(set(ids)) == 2 and before.track_id not in ids and min(ids) > before.track_id
    assert res.track_id == ids[0]  # the single field: the first [SEG]'s, for clients of one track per request
    assert [o.track_id for o in res.objects] == ids and res.object.track_id == ids[0]
    assert all(o.query == TWO for o in res.objects)
    harness.wait_for(lambda: sorted(started(harness)) == sorted([before.track_id, *ids]),
                     "STARTED for every track")

    assert index(res.object) == 5  # the newest window frame
    harness.track_frames(6, 9)
    harness.wait_for(lambda: {6, 7, 8} <= {index(m) for m in harness.got["objects"]}, "objects of frames 6..8")
    later = [m for m in harness.got["objects"] if index(m) >= 6]
    assert [index(m) for m in later] == [6, 7, 8]
    assert all(sorted(o.track_id for o in m.objects) == sorted([before.track_id, *ids]) for m in later)
    assert sorted(harness.node.worker.tracks) == sorted([before.track_id, *ids])

    # without tracking: every object of the answer, no track id
    quick = harness.segment("the cup and the plate", track=False)
    assert quick.success and list(quick.track_ids) == [] and quick.track_id == 0
    assert [o.track_id for o in quick.objects] == [0, 0]

    # ~/stop_tracking stops them one by one
    assert list(harness.stop(ids[0]).stopped_ids) == [ids[0]]
    harness.track_frames(9, 10)
    harness.wait_for(lambda: any(index(m) == 9 for m in harness.got["objects"]), "objects of frame 9")
    last = next(m for m in harness.got["objects"] if index(m) == 9)
    assert sorted(o.track_id for o in last.objects) == sorted([before.track_id, ids[1]])


def test_a_cancelled_action_stops_every_track_of_its_request(harness):
    """Cancelled while its two tracks catch up (announced, STARTED): both get STOPPED, others stay."""
    other = harness.segment("the red cup").track_id
    client = harness.action_client
    assert client.wait_for_server(10)
    feedback = []
    with harness.hold_grounding() as hold:
        send = client.send_goal_async(SegmentAndTrack.Goal(query=TWO, track=True),
                                      feedback_callback=lambda f: feedback.append(list(f.feedback.track_ids)))
        harness.wait_for(hold.entered.is_set, "the grounding to start")
        harness.publish_frames(6, 9)  # arrive while the language model runs
        with harness.hold_catch_up_until_cancel():
            hold.release.set()
            harness.wait_for(lambda: len(started(harness)) >= 3, "STARTED of both new tracks")
            harness.wait_for(send.done, "goal accepted")
            handle = send.result()
            harness.wait_for(lambda: any(feedback), "feedback naming the tracks")
            harness.wait_for(handle.cancel_goal_async().done, "cancel answered")
            outcome = handle.get_result_async()
            harness.wait_for(outcome.done, "cancelled result")
    new = [i for i in started(harness) if i != other]
    assert len(new) == 2 and next(f for f in feedback if f) == new
    assert outcome.result().status == 5 and not outcome.result().result.success  # GoalStatus.STATUS_CANCELED
    harness.wait_for(lambda: sorted(stopped(harness)) == sorted(new), "STOPPED for both")
    assert harness.node.worker.tracks == {other: "the red cup"}


def test_an_action_result_lists_every_track(harness):
    client = harness.action_client
    assert client.wait_for_server(10)
    done = threading.Event()
    send = client.send_goal_async(SegmentAndTrack.Goal(query=TWO, track=True))
    harness.wait_for(send.done, "goal accepted")
    result = send.result().get_result_async()
    result.add_done_callback(lambda _: done.set())
    harness.wait_for(done.is_set, "result")
    res = result.result().result
    assert res.success and len(res.track_ids) == 2 and res.track_id == res.track_ids[0]
    assert [o.track_id for o in res.objects] == list(res.track_ids)
    assert sorted(harness.node.worker.tracks) == sorted(res.track_ids)
