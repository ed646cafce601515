"""Several [SEG] in one answer, in the node: one track per [SEG], each with its own id (answer rig).

The answer rig (a tiny checkpoint answering through greedy decoding) says
"Sure, [SEG] and [SEG]." for a query holding "and". The node runs with its
production executor, QoS and queue depth (node_harness.py); only the observer
has deeper queues.
"""

import threading

import pytest
from node_harness import NodeHarness, stamp_ns
from test_tracker_helpers import one_torch_thread  # noqa: F401  (autouse: one torch thread on a shared machine)

from sa2va_i_ros.action import SegmentAndTrack
from sa2va_i_ros.core.checkpoint.answer_rig import QUERIES
from sa2va_i_ros.msg import TrackEvent
from sa2va_i_ros.ros.conversions import stamp_to_ns

pytestmark = pytest.mark.ros
TWO = QUERIES["two_seg"]  # "the cup and the bowl"


@pytest.fixture(scope="module")
def harness(answer_rig):
    h = NodeHarness(answer_rig, name="several_objects")
    h.start()
    yield h
    h.close()


@pytest.fixture(autouse=True)
def clean(harness):
    yield
    harness.node.worker.stop(0)
    harness.wait_for(harness.idle, "the worker to settle")
    harness.node.worker.clear_frames()
    harness.wait_for(harness.idle, "the worker to forget the frames")
    for msgs in harness.got.values():
        msgs.clear()


def buffer(harness, start, stop):
    harness.publish_frames(start, stop)
    harness.wait_for(lambda: harness.buffered() == stop - start, f"{stop - start} frames buffered")


def index(msg) -> int:
    """The frame number of an output (stamp_ns(i) = 100 s + i / 10 s)."""
    return (stamp_to_ns(msg.header.stamp) - stamp_ns(0)) // 10**8


def events(harness, kind):
    return [e.track_id for e in harness.got["events"] if e.event == kind]


def test_two_seg_give_two_tracks_with_their_own_ids_on_every_later_frame(harness):
    buffer(harness, 0, 6)
    before = harness.segment("the red cup")  # one [SEG]: one track, from the node's lifetime counter
    assert before.success and list(before.track_ids) == [before.track_id]
    res = harness.segment(TWO)
    assert res.success, res.message
    assert res.answer == "Sure, [SEG] and [SEG]."
    ids = list(res.track_ids)
    assert len(ids) == 2 and len(set(ids)) == 2 and before.track_id not in ids and min(ids) > before.track_id
    assert res.track_id == ids[0]  # the single field: the first [SEG]'s, for clients of one track per request
    assert [o.track_id for o in res.objects] == ids and res.object.track_id == ids[0]
    assert all(o.query == TWO for o in res.objects)
    harness.wait_for(lambda: sorted(events(harness, TrackEvent.STARTED)) == sorted([before.track_id, *ids]),
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
    buffer(harness, 0, 6)
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
            harness.wait_for(lambda: len(events(harness, TrackEvent.STARTED)) >= 3, "STARTED of both new tracks")
            harness.wait_for(send.done, "goal accepted")
            handle = send.result()
            harness.wait_for(lambda: any(feedback), "feedback naming the tracks")
            harness.wait_for(handle.cancel_goal_async().done, "cancel answered")
            outcome = handle.get_result_async()
            harness.wait_for(outcome.done, "cancelled result")
    new = [i for i in events(harness, TrackEvent.STARTED) if i != other]
    assert len(new) == 2 and next(f for f in feedback if f) == new
    assert outcome.result().status == 5 and not outcome.result().result.success  # GoalStatus.STATUS_CANCELED
    harness.wait_for(lambda: sorted(events(harness, TrackEvent.STOPPED)) == sorted(new), "STOPPED for both")
    assert harness.node.worker.tracks == {other: "the red cup"}


def test_an_action_result_lists_every_track(harness):
    buffer(harness, 0, 6)
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
