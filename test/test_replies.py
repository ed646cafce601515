"""Request and reply conversions of ~/segment, ~/segment_and_track and ~/stop_tracking, without a node."""

from __future__ import annotations

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from std_msgs.msg import Header

from sa2va_i_ros.action import SegmentAndTrack
from sa2va_i_ros.ros.replies import fill_reply, fill_stopped, mark_cancelled, segment_request
from sa2va_i_ros.runtime.session import ObjectOutput, SegmentReply, SegmentRequest
from sa2va_i_ros.srv import Segment, StopTracking


def header(sec: int) -> Header:
    return Header(stamp=Time(sec=sec, nanosec=5), frame_id="camera_color_optical_frame")


def reply(**kw) -> SegmentReply:
    mask = np.zeros((4, 6), bool)
    mask[1:3, 2:5] = True
    objects = [ObjectOutput(7, "the cup", header(9), mask, 0.75, True),
               ObjectOutput(8, "the cup", header(9), mask, 0.5, False)]
    values = dict(success=True, message="replaced track 3", track_id=7, answer="Sure, [SEG] and [SEG].",
                  window_frames=12, sampled_indices=[0, 5, 11], sampled_headers=[header(1), header(6), header(9)],
                  timing_ms={"queue": 1.5, "language": 20.0, "total": 30.0}, track_ids=[7, 8], objects=objects)
    return SegmentReply(**{**values, **kw})


@pytest.mark.parametrize("goal", [Segment.Request, SegmentAndTrack.Goal])
def test_the_service_request_and_the_action_goal_give_the_same_request(goal):
    msg = goal(query="the cup", num_frames=3, sampling="first", prompt_frames="all", track=False, window_sec=2.5)
    assert segment_request(msg) == SegmentRequest("the cup", 3, "first", "all", False, 2.5)


@pytest.mark.parametrize("answer", [Segment.Response, SegmentAndTrack.Result])
def test_a_reply_fills_the_service_response_and_the_action_result_alike(answer):
    msg = answer()
    fill_reply(msg, reply(), with_masks=True)
    assert msg.success and msg.message == "replaced track 3" and msg.answer == "Sure, [SEG] and [SEG]."
    assert (msg.track_id, list(msg.track_ids), msg.window_frames) == (7, [7, 8], 12)
    assert list(msg.sampled_indices) == [0, 5, 11] and [s.sec for s in msg.sampled_stamps] == [1, 6, 9]
    assert [o.track_id for o in msg.objects] == [7, 8] and msg.object.track_id == 7  # object: objects[0]
    assert msg.objects[1].visible is False and msg.objects[0].header.stamp.sec == 9
    assert (msg.objects[0].bbox.x_offset, msg.objects[0].bbox.width, msg.objects[0].area) == (2, 3, 6)
    t = msg.timing
    assert (t.queue_ms, t.language_ms, t.total_ms, t.decode_ms) == (1.5, 20.0, 30.0, 0.0)
    assert (msg.objects[0].mask.height, msg.objects[0].mask.width, len(msg.objects[0].mask.data)) == (4, 6, 24)


@pytest.mark.parametrize("answer", [Segment.Response, SegmentAndTrack.Result])
def test_replies_carry_no_mask_unless_asked(answer):
    """Issue 22: a reply printed by ``ros2 service call`` was ~154 000 lines of mask at 320x240."""
    assert not Segment.Request().with_masks and not SegmentAndTrack.Goal().with_masks  # the default
    msg = answer()
    fill_reply(msg, reply())
    for obj in (*msg.objects, msg.object):
        assert len(obj.mask.data) == 0 and (obj.mask.height, obj.mask.width) == (0, 0)
        assert obj.mask.header == obj.header
    # the rest is there: ids, boxes, areas, scores, the answer, timing
    assert [o.track_id for o in msg.objects] == [7, 8] and msg.objects[0].area == 6 and msg.objects[0].bbox.width == 3
    assert msg.objects[1].score == pytest.approx(0.5) and msg.answer and msg.timing.total_ms == 30.0


def test_objects_without_a_track_carry_id_zero():
    msg = Segment.Response()
    fill_reply(msg, reply(track_id=0, track_ids=[]))
    assert [o.track_id for o in msg.objects] == [0, 0] and msg.track_id == 0


def test_a_cancelled_result_has_no_track():
    result = SegmentAndTrack.Result()
    fill_reply(result, reply(message=""))
    mark_cancelled(result)
    assert not result.success and result.message == "cancelled"
    assert result.track_id == 0 and list(result.track_ids) == []


def test_stop_tracking_says_what_it_stopped():
    response = StopTracking.Response()
    fill_stopped(response, [3, 4])
    assert response.success and list(response.stopped_ids) == [3, 4] and response.message == "stopped [3, 4]"
    fill_stopped(response, [])
    assert response.success and response.message == "nothing was tracked"
