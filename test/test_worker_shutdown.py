"""Shutdown and cancel: a cancelled queued request is answered at once; close() stops the step under way
between two model calls and frees the model only once no step runs."""

from __future__ import annotations

import threading

import numpy as np

from sa2va_i_ros.runtime.frame_buffer import FrameBuffer
from sa2va_i_ros.runtime.session import SegmentRequest, Session, Settings
from sa2va_i_ros.runtime.worker import PerceptionWorker
from sa2va_i_ros.runtime.worker.job import Phase
from sa2va_i_ros.testing.simulation import DESKTOP_GPU, SimClock, StandInEngine, StandInTracker
from sa2va_i_ros.testing.threaded_rig import Rig


def test_a_cancelled_queued_request_is_answered_at_once():
    """Cancelling a request that waits behind a running one answers it now (the action's goal ends now),
    not when it would reach the head of the queue; the running one goes on."""
    clock = SimClock()
    session = Session(StandInEngine(clock, DESKTOP_GPU), FrameBuffer(), tracker=StandInTracker(clock, DESKTOP_GPU),
                      settings=Settings(max_queued_requests=2, prefill_chunk_tokens=128))
    worker = PerceptionWorker(session, None, clock, threaded=False)
    for k in range(1, 6):
        worker.offer_frame({"stamp_ns": k * 10**8}, k * 10**8, np.zeros((6, 8, 3), np.uint8))
    running, waiting = [], []
    first = worker.submit(SegmentRequest("the cup"), on_reply=running.append)
    worker.run_once()
    worker.run_once()
    assert worker.job is not None and worker.job.ticket is first
    second = worker.submit(SegmentRequest("the bowl"), on_reply=waiting.append, on_done=waiting.append)
    worker.cancel(second)
    assert second.done and len(waiting) == 2 and not waiting[0].success and "cancelled" in waiting[0].message
    assert worker.queue_length() == 0 and worker.job.ticket is first and not first.done
    worker.run_until_idle()
    assert running[0].success and len(waiting) == 2


def grounding_started(rig: Rig) -> tuple:
    rig.pump_until(lambda: rig.index >= 10)
    ticket, replies, _ = rig.submit("the cup")
    rig.pump_until(lambda: rig.worker.job is not None and rig.worker.job.phase is Phase.GROUNDING, pause_s=0.0)
    return ticket, replies


def test_close_ends_a_running_grounding_between_two_model_calls():
    rig = Rig(delay_s=0.01)
    ticket, replies = grounding_started(rig)
    freed = []
    assert rig.worker.close("the node was cleaned up", then=lambda: freed.append(threading.current_thread()))
    calls = rig.plan.calls["grounding"]
    assert replies[0].message == "the node was cleaned up" and ticket.done
    assert freed == [threading.current_thread()]  # no step ran any more: freed at once, by close()
    assert not rig.worker._thread.is_alive() and rig.plan.calls["grounding"] == calls
    assert not rig.worker.errors


def test_a_step_that_outlives_the_close_timeout_frees_the_model_when_it_ends():
    """close() answers at once, but the model is freed by the worker thread after its step, never under it."""
    rig = Rig(delay_s=0.3)
    ticket, replies = grounding_started(rig)
    freed, in_step = [], []
    original = rig.plan.call

    def call(phase, wait=True):
        in_step.append(True)
        try:
            return original(phase, wait)
        finally:
            in_step.pop()

    rig.plan.call = call
    ended = rig.worker.close("the node is shutting down", timeout=0.01,
                             then=lambda: freed.append((threading.current_thread(), list(in_step))))
    assert not ended and ticket.done and replies[0].message == "the node is shutting down"
    rig.worker._thread.join(30)
    assert freed == [(rig.worker._thread, [])]  # once, on the worker thread, outside any model call
