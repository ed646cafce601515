"""Automatic re-grounding through the node, with the tiny checkpoint, on the synthetic tabletop where the cup
leaves the view (frames 43-67 of 90 at 15 Hz) and re-enters.

The tiny checkpoint has random weights: its presence scores say nothing about
the cup. So the loss is made deterministic with the presence settings, at the
frames where the scene's ground truth has the cup leave and come back:
``presence_threshold`` 1.0 when it leaves (no frame counts as seen: lost after
``lost_after_frames``), 0.0 when it is back (every frame counts as seen), and
``found_after_frames`` at its maximum, so that the lost track is never found by
the tracker itself (SAM2's weakness that re-grounding is for).
``reground_after_sec`` puts the first attempt after the cup's return.

What this proves: the parameters reach the worker; the re-grounding is due on
frame stamps; it runs through the real engine and tracker as an internal
request while the track keeps its live outputs; the model's mask re-seeds the
SAME track id, announced by one REGROUNDED event with a camera frame's exact
header, and the outputs after it carry that id, visible. It does not prove that
the tiny model recognises the cup (it cannot), nor a give-up (the tiny model
answers a mask for any query: ``test_regrounding_sim.py`` covers misses, give-up
and pre-emption at GPU and Jetson timings).
"""

from __future__ import annotations

import pytest
from node_harness import NodeHarness
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from test_tracker_helpers import one_torch_thread  # noqa: F401  (autouse: one torch thread on a shared machine)

from sa2va_i_ros.msg import TrackEvent
from sa2va_i_ros.ros.conversions import ns_to_stamp, stamp_to_ns
from sa2va_i_ros.testing.synthetic.scene import FRAME_ID, SceneSpec, render

pytestmark = [pytest.mark.ros, pytest.mark.slow]
QUERY = "the cup left of the bowl"
SPEC = SceneSpec(width=160, height=120, frames=90)  # 15 Hz
LEAVES, BACK = 43, 68  # first frame without the cup, first frame with it again (render(...).ids)
LOST_AFTER = 3
AFTER_SEC = 1.8  # due 27 frames after the loss (frame 45): frame 72, after the return


def scene_msg(k: int) -> Image:
    rgb = render(SPEC, k).rgb
    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", step=rgb.shape[1] * 3,
                data=rgb.tobytes())
    msg.header.stamp, msg.header.frame_id = ns_to_stamp(SPEC.stamp_ns(k)), FRAME_ID
    return msg


def test_the_cup_leaves_and_returns_and_its_track_is_regrounded_under_the_same_id(tiny_checkpoint):
    frames = [render(SPEC, k).ids for k in range(SPEC.frames)]
    assert [k for k in range(30, SPEC.frames) if not (frames[k] == 1).any()] == list(range(LEAVES, BACK))
    h = NodeHarness(tiny_checkpoint, lost_after_frames=LOST_AFTER, found_after_frames=10000,
                    reground_after_sec=AFTER_SEC, reground_max_attempts=2, reground_window_sec=0.5)
    try:
        h.start()
        for k in range(27, 36):  # after the hand passed: the cup in view
            h.send(scene_msg(k))
        h.wait_for(lambda: h.buffered() == 9, "9 frames buffered")
        r = h.segment(QUERY)
        assert r.success, r.message
        a = r.track_id
        h.wait_for(h.idle, "the track to join")

        def track(start, stop):
            for k in range(start, stop):
                h.send(scene_msg(k))
                h.wait_for(h.idle, f"the worker done with frame {k}")

        track(36, LEAVES)
        h.node.set_parameters([Parameter("presence_threshold", value=1.0)])  # the cup left: nothing is seen
        track(LEAVES, BACK)
        h.node.set_parameters([Parameter("presence_threshold", value=0.0)])  # it is back: everything is seen
        track(BACK, SPEC.frames)
        h.wait_for(lambda: any(e.event == TrackEvent.REGROUNDED for e in h.got["events"]), "a REGROUNDED event")
        h.wait_for(lambda: len(h.got["objects"]) >= SPEC.frames - 36, "every frame's objects")
    finally:
        h.close()

    events = [(e.event, e.track_id, stamp_to_ns(e.header.stamp)) for e in h.got["events"]]
    assert [(kind, i) for kind, i, _ in events] == [(TrackEvent.STARTED, a), (TrackEvent.LOST, a),
                                                   (TrackEvent.REGROUNDED, a)], events
    assert all(e.query == QUERY and e.header.frame_id == FRAME_ID for e in h.got["events"])
    lost_at, regrounded_at = events[1][2], events[2][2]
    assert lost_at == SPEC.stamp_ns(LEAVES + LOST_AFTER - 1)  # the third frame in a row not seen
    due = lost_at + round(AFTER_SEC * 1e9)
    assert regrounded_at in {SPEC.stamp_ns(k) for k in range(SPEC.frames)} and regrounded_at >= due
    # every frame after the query has its objects, with its own header, one track, always the same id
    stamps = [stamp_to_ns(m.header.stamp) for m in h.got["objects"]]
    assert stamps == [SPEC.stamp_ns(k) for k in range(36, SPEC.frames)]
    assert all([o.track_id for o in m.objects] == [a] for m in h.got["objects"])
    after = [m.objects[0] for m in h.got["objects"] if stamp_to_ns(m.header.stamp) > regrounded_at]
    assert after and all(o.visible for o in after)  # the re-seeded object, not the lost one
    before = [m.objects[0] for m in h.got["objects"] if lost_at <= stamp_to_ns(m.header.stamp) < regrounded_at]
    assert before and not any(o.visible for o in before)
