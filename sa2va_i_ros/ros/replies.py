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


def fill_reply(response, replies: dict[str, SegmentReply] | SegmentReply, with_masks: bool = False) -> None:
    """Fill a ``Segment.Response`` or a ``SegmentAndTrack.Result`` with the worker's answer: one camera's
    reply, or one per camera (``CameraWorkers``: ``{camera: reply}``, in the cameras' order).

    Without ``with_masks`` (the request's flag, false by default) each object's
    mask is an empty image with the object's header: ids, boxes, areas, scores,
    the answer and timing stay, so ``ros2 service call`` prints a screen or two
    instead of a mask's ~150 000 lines (the masks are on ~/mask and ~/objects).

    Several cameras (a ``*`` request): success when any camera found the
    object; the message and the answer name each camera ("head: ..."); the ids,
    sampled frames and objects follow the cameras' order (each object names its
    camera); window_frames is their sum; the timing is the slowest camera's.
    """
    if isinstance(replies, SegmentReply):
        replies = {"": replies}
    items = list(replies.items())
    one = items[0][1] if len(items) == 1 else None
    response.success = any(r.success for _, r in items)
    response.message = one.message if one is not None else "; ".join(
        f"{camera}: {r.message or ('found' if r.success else 'not found')}" for camera, r in items)
    response.track_ids = [int(i) for _, r in items for i in r.track_ids]
    response.track_id = one.track_id if one is not None else (response.track_ids or [0])[0]  # the first
    response.answer = one.answer if one is not None else "\n".join(f"{camera}: {r.answer}" for camera, r in items)
    response.window_frames = sum(r.window_frames for _, r in items)
    response.sampled_indices = [int(i) for _, r in items for i in r.sampled_indices]
    response.sampled_stamps = [h.stamp for _, r in items for h in r.sampled_headers]
    response.objects = []
    for camera, r in items:
        ids = list(r.track_ids) + [0] * len(r.objects)  # track false: objects without a track (id 0)
        for i, o in zip(ids, r.objects, strict=False):
            obj = tracked_object_msg(o.header, i, o.query, o.score, o.visible, o.mask, None)
            obj.camera = camera
            if not with_masks:
                obj.mask = Image(header=copy_header(obj.header))
            response.objects.append(obj)
    if response.objects:
        response.object = response.objects[0]
    t = max((r for _, r in items), key=lambda r: r.timing_ms.get("total", 0.0)).timing_ms
    response.timing = Timing(queue_ms=t.get("queue", 0.0), preprocess_ms=t.get("preprocess", 0.0),
                             language_ms=t.get("language", 0.0), decode_ms=t.get("decode", 0.0),
                             propagate_ms=t.get("propagate", 0.0), total_ms=t.get("total", 0.0))


def mark_cancelled(result) -> None:
    """A cancelled goal's (filled) result: not a success, and no track (its tracks were stopped)."""
    result.success, result.message, result.track_id = False, result.message or "cancelled", 0
    result.track_ids = []


def fill_stopped(response, stopped: list[int]) -> None:
    """A ``StopTracking.Response`` for the tracks ``worker.stop`` ended."""
    response.success, response.stopped_ids = True, stopped
    response.message = f"stopped {stopped}" if stopped else "nothing was tracked"
