"""The segment node with real rclpy and the tiny checkpoint: what a ROS user sees.

The node runs with its production executor and QoS (node_harness.py); frames
are published one at a time, each once the node took it.
"""

import math
import threading

import numpy as np
import pytest
from node_harness import SIZE, NodeHarness, camera_info, depth_msg, image_msg, stamp_ns
from rclpy.parameter import Parameter
from test_tracker_helpers import one_torch_thread  # noqa: F401  (autouse: one torch thread on a shared machine)

from sa2va_i_ros.action import SegmentAndTrack
from sa2va_i_ros.msg import TrackEvent
from sa2va_i_ros.ros.conversions import stamp_to_ns
from sa2va_i_ros.ros.parameters import BY_NAME
from sa2va_i_ros.testing.tiny_sa2va import DEFAULT_ANSWER  # what the tiny checkpoint was built to say

pytestmark = pytest.mark.ros
QUERY = "the cup left of the bowl"


@pytest.fixture(scope="module")
def harness(tiny_checkpoint):
    h = NodeHarness(tiny_checkpoint, use_depth=True, lost_after_frames=2)
    h.start()
    h.info_pub.publish(camera_info())
    yield h
    h.close()


@pytest.fixture(autouse=True)
def clean(harness):
    """Each test starts with no track and an empty buffer."""
    yield
    harness.reset()


def fresh_frames(harness, start, stop, depth=False):
    for i in range(start, stop):
        if depth:
            harness.send_with_depth(i)
        else:
            harness.send(image_msg(i))
    harness.wait_for(lambda: harness.buffered() == stop - start, f"{stop - start} frames buffered")


def stamps(msgs):
    return [stamp_to_ns(m.header.stamp) for m in msgs]


def test_segment_returns_masks_and_every_output_carries_its_frames_header(harness):
    fresh_frames(harness, 0, 10, depth=True)
    r = harness.segment(QUERY, track=True, with_masks=True)
    assert r.success, r.message
    assert r.track_id > 0 and r.answer == DEFAULT_ANSWER and r.window_frames == 10
    assert list(r.sampled_indices) == [0, 2, 4, 6, 9]
    assert [stamp_to_ns(s) for s in r.sampled_stamps] == [stamp_ns(i) for i in (0, 2, 4, 6, 9)]
    assert stamp_to_ns(r.object.header.stamp) == stamp_ns(9) and r.object.query == QUERY
    assert r.object.mask.encoding == "mono8" and (r.object.mask.height, r.object.mask.width) == SIZE
    assert r.timing.total_ms > 0 and r.timing.language_ms > 0 and r.timing.propagate_ms > 0

    harness.track_frames(10, 16, depth=True)
    for key in ("objects", "mask", "overlay"):
        harness.wait_for(lambda key=key: len(harness.got[key]) >= 6, f"{key} for the 6 new frames")
    expected = [stamp_ns(i) for i in range(10, 16)]
    for key in ("objects", "mask", "overlay"):
        assert stamps(harness.got[key]) == expected, key
        assert all(m.header.frame_id == "camera_color_optical_frame" for m in harness.got[key])
    for arr in harness.got["objects"]:
        (obj,) = arr.objects
        assert obj.track_id == r.track_id and obj.query == QUERY and 0.0 <= obj.score <= 1.0
        assert obj.header == arr.header and obj.mask.header == arr.header
        mask = np.frombuffer(bytes(obj.mask.data), np.uint8).reshape(SIZE)
        assert set(np.unique(mask)) <= {0, 255} and obj.area == int((mask == 255).sum())
        if obj.area:
            assert math.isclose(obj.centroid.z, 0.8, abs_tol=1e-3)  # the depth plane at 0.8 m
        else:
            assert math.isnan(obj.centroid.z)
    assert all(m.encoding == "mono8" for m in harness.got["mask"])
    started = [e for e in harness.got["events"] if e.event == TrackEvent.STARTED]
    assert len(started) == 1 and started[0].track_id == r.track_id and started[0].query == QUERY


def test_object_points_lie_on_the_depth_plane(harness):
    fresh_frames(harness, 0, 6, depth=True)
    r = harness.segment(QUERY)
    harness.track_frames(6, 12, depth=True)
    for key in ("objects", "points"):
        harness.wait_for(lambda key=key: len(harness.got[key]) >= 6, key)
    areas = {stamp_to_ns(a.header.stamp): a.objects[0].area for a in harness.got["objects"]}
    for cloud in harness.got["points"]:
        pts = np.frombuffer(bytes(cloud.data), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("id", "<u4")])
        assert cloud.width == len(pts) and (pts["id"] == r.track_id).all()
        assert areas[stamp_to_ns(cloud.header.stamp)] >= len(pts)
        np.testing.assert_allclose(pts["z"], 0.8, atol=1e-3)


def test_several_tracks_give_an_instance_mask_and_stop_works(harness):
    fresh_frames(harness, 0, 6)
    a, b = harness.segment(QUERY).track_id, harness.segment("the bowl").track_id
    harness.track_frames(6, 8)
    for key in ("objects", "mask"):
        harness.wait_for(lambda key=key: len(harness.got[key]) >= 2, f"{key} with both tracks")
    assert sorted(o.track_id for o in harness.got["objects"][-1].objects) == sorted([a, b])
    assert harness.got["mask"][-1].encoding == "mono16"
    ids = np.frombuffer(bytes(harness.got["mask"][-1].data), "<u2")
    assert set(np.unique(ids)) <= {0, a, b}

    unknown = harness.stop(9999)
    assert not unknown.success and "no track 9999" in unknown.message
    r = harness.stop(a)
    assert r.success and list(r.stopped_ids) == [a]
    n = len(harness.got["objects"])
    harness.track_frames(8, 9)
    harness.wait_for(lambda: len(harness.got["objects"]) > n, "objects after stop")
    assert [o.track_id for o in harness.got["objects"][-1].objects] == [b]
    assert harness.stop(0).stopped_ids.tolist() == [b]
    harness.wait_for(lambda: sum(e.event == TrackEvent.STOPPED for e in harness.got["events"]) >= 2, "events")
    stopped = {e.track_id: e.query for e in harness.got["events"] if e.event == TrackEvent.STOPPED}
    assert stopped == {a: QUERY, b: "the bowl"}  # a STOPPED event names the track's query


def test_action_feedback_result_and_cancel(harness):
    fresh_frames(harness, 0, 6)
    client = harness.action_client
    harness.action_ready()
    feedback = []
    goal = SegmentAndTrack.Goal(query=QUERY, track=True)
    send = client.send_goal_async(goal, feedback_callback=lambda f: feedback.append(f.feedback.stage))
    harness.wait_for(send.done, "goal accepted")
    result = send.result().get_result_async()
    harness.wait_for(result.done, "result")
    res = result.result().result
    assert res.success and res.track_id > 0 and res.answer == DEFAULT_ANSWER
    harness.wait_for(lambda: "tracking" in feedback, "the last feedback")
    assert feedback[:3] == ["sampling", "language_model", "decoding"] and "catching_up" in feedback

    # cancel: a goal cancelled while it runs ends CANCELED and leaves no track behind
    tracks_before = dict(harness.node.worker.tracks)
    started = threading.Event()
    send = client.send_goal_async(SegmentAndTrack.Goal(query="the bowl", track=True),
                                  feedback_callback=lambda f: started.set())
    harness.wait_for(send.done, "goal accepted")
    handle = send.result()
    harness.wait_for(started.is_set, "first feedback")
    cancel = handle.cancel_goal_async()
    harness.wait_for(cancel.done, "cancel answered")
    outcome = handle.get_result_async()
    harness.wait_for(outcome.done, "cancelled result")
    assert outcome.result().status == 5  # GoalStatus.STATUS_CANCELED
    assert not outcome.result().result.success
    harness.wait_for(harness.idle, "the worker to settle")
    assert harness.node.worker.tracks == tracks_before


def test_an_action_cancelled_after_its_track_started_sends_stopped(harness):
    """The track was announced (STARTED) and is catching up on frames that came during grounding."""
    fresh_frames(harness, 0, 6)
    client = harness.action_client
    harness.action_ready()
    with harness.hold_grounding() as hold:
        send = client.send_goal_async(SegmentAndTrack.Goal(query=QUERY, track=True))
        harness.wait_for(hold.entered.is_set, "the grounding to start")
        harness.publish_frames(6, 9)  # arrive while the language model runs
        with harness.hold_catch_up_until_cancel():
            hold.release.set()
            harness.wait_for(lambda: any(e.event == TrackEvent.STARTED for e in harness.got["events"]), "STARTED")
            started = next(e for e in harness.got["events"] if e.event == TrackEvent.STARTED)
            harness.wait_for(send.done, "goal accepted")
            handle = send.result()
            harness.wait_for(handle.cancel_goal_async().done, "cancel answered")
            outcome = handle.get_result_async()
            harness.wait_for(outcome.done, "cancelled result")
    assert outcome.result().status == 5 and not outcome.result().result.success
    harness.wait_for(lambda: any(e.event == TrackEvent.STOPPED for e in harness.got["events"]), "STOPPED")
    kinds = [(e.event, e.track_id) for e in harness.got["events"]]
    assert kinds.index((TrackEvent.STOPPED, started.track_id)) > kinds.index((TrackEvent.STARTED, started.track_id))
    assert harness.node.worker.tracks == {}


def test_concurrent_clients_are_all_answered(harness):
    harness.node.set_parameters([Parameter("max_queued_requests", value=4)])
    fresh_frames(harness, 0, 6)
    futures = [harness.segment_client.call_async(harness.segment_client.srv_type.Request(query=q, track=False))
               for q in ("the cup", "the bowl", "the red box", "the cup left of the bowl")]
    harness.wait_for(lambda: all(f.done() for f in futures), "four replies", timeout=180)
    replies = [f.result() for f in futures]
    assert all(r.success for r in replies), [r.message for r in replies]
    harness.node.set_parameters([Parameter("max_queued_requests", value=BY_NAME["max_queued_requests"].default)])


@pytest.mark.parametrize("request_kw, message", [
    (dict(query=""), "empty"), (dict(query="  \t"), "empty"), (dict(query="x" * 100_000), "max_query_chars"),
    (dict(query="the cup \ufffd"), "not valid UTF-8"), (dict(query=QUERY, num_frames=10_000), "outside"),
    (dict(query=QUERY, sampling="random"), "sampling"), (dict(query=QUERY, prompt_frames="x"), "prompt_frames"),
    (dict(query=QUERY, window_sec=-2.0), "window_sec"), (dict(query=QUERY, window_sec=1e300), "window_sec"),
    (dict(query="the [SEG] cup"), "reserved"),
])
def test_bad_requests_are_answered_and_change_nothing(harness, request_kw, message):
    fresh_frames(harness, 0, 4)
    r = harness.segment(**request_kw)
    assert not r.success and message in r.message and "internal error" not in r.message
    assert harness.node.worker.tracks == {} and harness.buffered() == 4


def test_query_before_any_frame(harness):
    r = harness.segment(QUERY)
    assert not r.success and "no frames buffered yet" in r.message


@pytest.mark.parametrize("mutate, counted", [
    (lambda m: setattr(m, "encoding", "yuv422"), "image UnsupportedEncoding"),
    (lambda m: (setattr(m, "height", 0), setattr(m, "width", 0), setattr(m, "data", b"")), "image InvalidImage"),
    (lambda m: setattr(m, "step", m.step + 7), "image InvalidImage"),
])
def test_bad_images_are_dropped_counted_and_the_node_keeps_going(harness, mutate, counted):
    fresh_frames(harness, 0, 3)
    before = harness.node._counts.get(counted, 0)
    msg = image_msg(3)
    mutate(msg)
    harness.send(msg)
    assert harness.node._counts.get(counted, 0) == before + 1
    harness.send(image_msg(4))
    assert harness.buffered() == 4


def test_out_of_order_duplicate_and_size_change(harness):
    fresh_frames(harness, 0, 5)
    r = harness.segment(QUERY)
    assert r.success
    harness.wait_for(harness.idle, "the track to join")
    for msg in (image_msg(4), image_msg(2)):  # duplicate, then late
        harness.send(msg)
    assert harness.node._counts.get("image out_of_order", 0) >= 1
    assert harness.node._counts.get("image duplicate", 0) >= 1
    assert harness.buffered() == 5 and list(harness.node.worker.tracks) == [r.track_id]
    for i in range(5, 8):  # the camera switches resolution: three frames confirm it
        harness.send(image_msg(i, size=(120, 160)))
    for key in ("objects", "mask"):
        harness.wait_for(lambda key=key: len(harness.got[key]) >= 1, f"{key} on the new size")
    assert (harness.got["mask"][-1].height, harness.got["mask"][-1].width) == (120, 160)
    assert harness.buffered() == 3


def test_bad_depth_never_breaks_the_rgb_outputs(harness):
    fresh_frames(harness, 0, 4, depth=True)
    r = harness.segment(QUERY)
    harness.wait_for(harness.idle, "the track to join")
    bad = depth_msg(4, size=(48, 64))  # another size than the image
    nan_depth = depth_msg(5)
    nan_depth.encoding, nan_depth.step = "32FC1", SIZE[1] * 4
    nan_depth.data = np.array([[np.nan, np.inf, 0.0, -1.0] * (SIZE[1] // 4)] * SIZE[0], "<f4").tobytes()
    for i, dmsg in ((4, bad), (5, nan_depth)):
        harness.depth_pub.publish(dmsg)
        harness.send(image_msg(i))
        harness.wait_for(harness.idle, f"frame {i} tracked")
    harness.wait_for(lambda: len(harness.got["objects"]) >= 2, "objects for both frames")
    assert harness.node._counts.get("depth mismatch", 0) >= 1
    last = harness.got["objects"][-1].objects[0]
    assert last.track_id == r.track_id and math.isnan(last.centroid.z)  # no valid depth under the mask


def test_parameter_updates_are_checked(harness):
    results = harness.node.set_parameters([Parameter("num_frames", value=0), Parameter("sampling", value="x"),
                                           Parameter("presence_threshold", value=1.5),
                                           Parameter("diagnostics_period", value=2.0),
                                           Parameter("device", value="tpu"),
                                           Parameter("max_num_frames", value=3)])  # below num_frames (5)
    assert [r.successful for r in results] == [False] * 6
    assert "max_num_frames" in results[-1].reason and "device" in results[-2].reason
    ok = harness.node.set_parameters([Parameter("num_frames", value=3)])[0]
    assert ok.successful and harness.node.session.settings.num_frames == 3
    harness.node.set_parameters([Parameter("num_frames", value=5)])
    for value in (0.0, 1.0):  # the ends of the declared range are accepted
        assert harness.node.set_parameters([Parameter("presence_threshold", value=value)])[0].successful
    harness.node.set_parameters([Parameter("presence_threshold", value=0.5)])


def test_diagnostics_report_rates_model_and_tracks(harness):
    fresh_frames(harness, 0, 4)
    harness.segment(QUERY)
    harness.track_frames(4, 8)
    harness.wait_for(lambda: any("track" in s.name for d in harness.got["diag"] for s in d.status),
                     "a diagnostics message with the track", timeout=10)
    names = {s.name.split(": ")[-1] for d in harness.got["diag"] for s in d.status}
    assert {"model", "input", "output"} <= names
    output = next(s for d in harness.got["diag"] for s in d.status if s.name.endswith("output"))
    assert {"frames_dropped_stale", "frames_thinned", "frames_live"} <= {kv.key for kv in output.values}


def test_lifecycle_deactivate_cleanup_configure_again(tiny_checkpoint, tmp_path):
    h = NodeHarness(tmp_path / "missing", name="sa2va_i_lifecycle")
    try:
        assert h.node.trigger_configure().name == "FAILURE"  # a missing checkpoint: node stays up
        corrupt = tmp_path / "corrupt"
        corrupt.mkdir()
        (corrupt / "config.json").write_text("{ not json")
        h.node.set_parameters([Parameter("model", value=str(corrupt))])
        assert h.node.trigger_configure().name == "FAILURE"
        r = h.segment(QUERY)
        assert not r.success and "not configured" in r.message
        h.node.set_parameters([Parameter("model", value=str(tiny_checkpoint))])
        h.start()
        h.publish_frames(0, 4)
        h.wait_for(lambda: h.buffered() == 4, "frames buffered")
        assert h.segment(QUERY).success
        h.wait_for(h.idle, "the track to join")
        assert h.node.trigger_deactivate().name == "SUCCESS"
        r = h.segment(QUERY)
        assert not r.success and "not active" in r.message
        h.wait_for(lambda: h.image_pub.get_subscription_count() == 0, "the node to unsubscribe")
        for i in (4, 5):  # sent while inactive: nothing may take them
            h.image_pub.publish(image_msg(i))
        assert h.node.trigger_activate().name == "SUCCESS"
        h.wait_for(lambda: h.image_pub.get_subscription_count() > 0, "the node to subscribe again")
        h.send(image_msg(6))  # a sentinel: everything published before it has been seen by now
        h.wait_for(lambda: stamp_ns(6) in stamps(h.got["objects"]), "the sentinel's output")
        assert [f.stamp_ns for f in h.node.session.buffer.window()] == [stamp_ns(i) for i in (0, 1, 2, 3, 6)]
        assert not {stamp_ns(4), stamp_ns(5)} & set(stamps(h.got["objects"]))
        assert h.node.trigger_deactivate().name == "SUCCESS"
        assert h.node.trigger_cleanup().name == "SUCCESS" and h.node.session is None
        h.start()  # configure + activate again
        h.publish_frames(10, 13)
        h.wait_for(lambda: h.buffered() == 3, "frames buffered after re-configure")
        assert h.segment(QUERY).success
    finally:
        h.close()


def test_missing_camera_info_gives_outputs_without_3d(tiny_checkpoint):
    h = NodeHarness(tiny_checkpoint, name="sa2va_i_nocam", use_depth=True, depth_wait=0.05)
    try:
        h.start()
        for i in range(4):
            h.send_with_depth(i)
        h.wait_for(lambda: h.buffered() == 4, "frames buffered")
        assert h.segment(QUERY).success
        h.track_frames(4, 7, depth=True)
        h.wait_for(lambda: len(h.got["objects"]) >= 3, "objects without camera_info")
        assert all(math.isnan(a.objects[0].centroid.z) for a in h.got["objects"])
        assert h.got["points"] == [] and h.node._counts.get("no camera_info", 0) >= 1
    finally:
        h.close()


def test_rclpy_hands_invalid_utf8_to_the_node_as_replacement_characters():
    """Why the node refuses U+FFFD: rclpy decodes an invalid UTF-8 query with replacement characters."""
    from rclpy.serialization import deserialize_message, serialize_message

    from sa2va_i_ros.srv import Segment

    raw = bytearray(serialize_message(Segment.Request(query="abcd")))
    raw[raw.find(b"abcd") + 1] = 0xFF
    assert deserialize_message(bytes(raw), Segment.Request).query == "a\ufffdcd"
