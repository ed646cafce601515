"""Warm-up at activate: one grounding and the tracker's paths on synthetic frames, nothing of the session
touched (parameter ``warm_up``; first-query latency with and without it: bench part ``faults``)."""

from __future__ import annotations

import numpy as np
import pytest
from test_tracker_helpers import one_torch_thread  # noqa: F401  (autouse: one torch thread on a shared machine)

from sa2va_i_ros.runtime.frame_buffer import FrameBuffer
from sa2va_i_ros.runtime.session import Session
from sa2va_i_ros.runtime.warm_up import warm_up


def test_warm_up_runs_the_model_and_leaves_the_session_as_it_was(engine):
    calls = []
    session = Session(engine, FrameBuffer(downscale=64))
    ground_steps = engine.ground_steps
    try:
        engine.ground_steps = lambda *a, **k: calls.append(a[0][0].shape) or ground_steps(*a, **k)
        took = warm_up(session, (480, 640))
    finally:
        del engine.ground_steps
    assert calls == [(48, 64, 3)]  # one grounding, at the stored size (buffer_downscale 64)
    assert took["grounding_s"] > 0 and took["tracking_s"] > 0
    assert session.track_ids == [] and len(session.buffer) == 0 and next(session._ids) == 1
    assert np.asarray(session.tracker.object_ids).size == 0


@pytest.mark.ros
def test_a_node_with_warm_up_activates_and_serves_its_first_query(tiny_checkpoint):
    from node_harness import NodeHarness

    h = NodeHarness(tiny_checkpoint, name="sa2va_i_warm_up", warm_up=True)
    try:
        h.start()
        assert h.node.session.track_ids == [] and len(h.node.session.buffer) == 0
        h.publish_frames(0, 4)
        h.wait_for(lambda: h.buffered() == 4, "frames buffered")
        reply = h.segment("the cup left of the bowl")
        assert reply.success and list(reply.track_ids) == [1], reply.message  # warm-up took no track id
    finally:
        h.close()
