"""Pure conversions between the node's requests and replies and the core's ``SegmentRequest``/``SegmentReply``.

``~/segment`` and ``~/segment_and_track`` carry the same request fields and
answer with the same fields (service response, action result), so one pair of
functions serves both, as ``conversions.py`` does for the data messages.
"""

from __future__ import annotations

from sensor_msgs.msg import Image

from sa2va_i_ros.msg import Timing
from sa2va_i_ros.ros.conversions import copy_header, tracked_object_msg
from sa2va_i_ros.runtime.session import SegmentReply, SegmentRequest


def segment_request(goal) -> SegmentRequest:
    """The core's request from a ``Segment.Request`` or a ``SegmentAndTrack.Goal``."""
    return SegmentRequest(query=goal.query, num_frames=int(goal.num_frames), sampling=goal.sampling,
                          prompt_frames=goal.prompt_frames, track=bool(goal.track), window_sec=float(goal.window_sec))


def fill_reply(response, reply: SegmentReply, with_masks: bool = False) -> None:
    """Fill a ``Segment.Response`` or a ``SegmentAndTrack.Result`` with the worker's reply.

    Without ``with_masks`` (the request's flag, false by default) each object's
    mask is an empty image with the object's header: ids, boxes, areas, scores,
    the answer and timing stay, so ``ros2 service call`` prints a screen or two
    instead of a mask's ~150 000 lines (the masks are on ~/mask and ~/objects).
    """
    response.success, response.message = reply.success, reply.message
    response.track_id = reply.track_id  # the first of track_ids
    response.track_ids = [int(i) for i in reply.track_ids]
    response.answer = reply.answer
    response.window_frames = reply.window_frames
    response.sampled_indices = [int(i) for i in reply.sampled_indices]
    response.sampled_stamps = [h.stamp for h in reply.sampled_headers]
    ids = list(reply.track_ids) + [0] * len(reply.objects)  # track false: objects without a track (id 0)
    response.objects = [tracked_object_msg(o.header, i, o.query, o.score, o.visible, o.mask, None)
                        for i, o in zip(ids, reply.objects, strict=False)]
    if not with_masks:
        for obj in response.objects:
            obj.mask = Image(header=copy_header(obj.header))
    if response.objects:
        response.object = response.objects[0]
    t = reply.timing_ms
    response.timing = Timing(queue_ms=t.get("queue", 0.0), preprocess_ms=t.get("preprocess", 0.0),
                             language_ms=t.get("language", 0.0), decode_ms=t.get("decode", 0.0),
                             propagate_ms=t.get("propagate", 0.0), total_ms=t.get("total", 0.0))


def mark_cancelled(result, reply: SegmentReply) -> None:
    """A cancelled goal's result: not a success, and no track (its tracks were stopped)."""
    result.success, result.message, result.track_id = False, reply.message or "cancelled", 0
    result.track_ids = []


def fill_stopped(response, stopped: list[int]) -> None:
    """A ``StopTracking.Response`` for the tracks ``worker.stop`` ended."""
    response.success, response.stopped_ids = True, stopped
    response.message = f"stopped {stopped}" if stopped else "nothing was tracked"
