"""Streaming SAM2 tracker seeded by Sa2VA-i's grounding masks (ROS-free).

It reproduces Sa2VA-i's offline propagation (sam2's ``SAM2VideoPredictor``:
``add_new_mask`` on every sampled frame, then forward ``propagate_in_video``) on a
live stream, one frame at a time, with bounded memory, for several objects.
docs/TRACKER.md has the semantics and what was measured.

Use from a ROS node (one lock around every tracker call)::

    tracker = StreamingTracker(sam2_model, TrackerConfig(gap_policy="catch_up"))

    # camera callback: every frame, whether or not a grounding is running
    with lock:
        result = tracker.step(frame_rgb_uint8, stamp)   # FrameResult
    for obj_id, r in result.objects.items():
        publish(obj_id, r.mask, r.score, r.visible, r.stamp)
    for ev in result.events:                            # "lost" / "found"
        publish_event(ev.obj_id, ev.kind, ev.stamp, ev.score)

    # grounding worker: the language model ran on `window` (frames + stamps)
    grounding = Grounding(frames=window_frames, stamps=window_stamps,
                          sampled_indices=sample_idx, masks=seg_masks,
                          raw_features=encoder_outputs)  # optional, saves encoder runs
    with lock:
        later = buffer.frames_after(window_stamps[-1])  # [(frame, stamp), ...] arrived meanwhile
        added = tracker.add_object(grounding, later=later)   # AddResult
    # added.frames[-1] is the newest output of the new object

    with lock:
        tracker.remove_object(obj_id)

Errors are ``ValueError`` (bad grounding, wrong mask or frame size, unknown id,
...), raised before any state changes.

The model to track with is the checkpoint's own SAM2 (``engine.model.sam2``:
Sa2VA-i exactly) or another of sam2's models (``models.TrackerChoice``,
``models.tracker_sam2``); ``TrackerConfig(compile=..., channels_last=..., dtype=...)``
selects the GPU speed paths (``fast.py``).
"""

from sa2va_i_ros.tracking.config import STREAM_NUM_FRAMES, TrackerConfig
from sa2va_i_ros.tracking.fast import FastPaths
from sa2va_i_ros.tracking.grounding import Grounding
from sa2va_i_ros.tracking.models import TRACKER_MODEL_NAMES, TrackerChoice, TrackerModelError, tracker_sam2
from sa2va_i_ros.tracking.presence import PresenceMonitor
from sa2va_i_ros.tracking.results import AddResult, FrameResult, MemoryStats, ObjectResult, PreparedObject, TrackEvent
from sa2va_i_ros.tracking.tracker import StreamingTracker

__all__ = [
    "STREAM_NUM_FRAMES",
    "TRACKER_MODEL_NAMES",
    "AddResult",
    "FastPaths",
    "FrameResult",
    "Grounding",
    "MemoryStats",
    "ObjectResult",
    "PreparedObject",
    "PresenceMonitor",
    "StreamingTracker",
    "TrackEvent",
    "TrackerChoice",
    "TrackerConfig",
    "TrackerModelError",
    "tracker_sam2",
]
