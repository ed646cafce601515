"""Fault containment in the real threaded worker: an exception in any phase ends only what it concerns.

The fault-injection double (``sa2va_i_ros/testing/faults.py``) raises at the
k-th call of a phase (grounding, seeding, catch-up, live step) a CUDA
out-of-memory RuntimeError or a ValueError. After each: the request under way
gets one clear reply (what failed, on which device, what to try), the other
tracks keep their live output, the next request is served, /diagnostics' health
says ERROR with the reason and OK again after the next good step, and no
exception reaches the worker thread's loop.
"""

from __future__ import annotations

import pytest

from sa2va_i_ros.errors import ObjectFault
from sa2va_i_ros.testing.faults import out_of_memory
from sa2va_i_ros.testing.threaded_rig import Rig

ERRORS = {"oom": out_of_memory, "value": lambda: ValueError("shapes (3, 4) and (5,) do not match [injected]")}
REQUEST_PHASES = {"grounding": "grounding", "seeding": "seeding the tracker", "catch_up": "the catch-up"}


@pytest.fixture
def rig():
    r = Rig()
    yield r
    r.close()
    assert not r.worker.errors, list(r.worker.errors)
    assert not r.rec.disorder, r.rec.disorder


def tracked(rig, query="the cup") -> int:
    rig.pump_until(lambda: rig.index >= 10)
    reply = rig.segment(query)
    assert reply.success, reply.message
    return reply.track_id


def still_live(rig, track_id: int) -> None:
    """Live output of ``track_id`` goes on: it appears on frames offered from now on."""
    after = rig.index * rig.period_ns
    rig.pump_until(lambda: rig.rec.outputs_of(track_id, after) >= 3)


@pytest.mark.parametrize("error", ERRORS)
@pytest.mark.parametrize("phase, k", [("grounding", 1), ("grounding", 9), ("seeding", 1), ("catch_up", 1),
                                      ("catch_up", 3)])  # one seeding call per request of one object
def test_fault_in_a_request_phase_ends_that_request_only(rig, phase, error, k):
    first = tracked(rig)
    rig.plan.arm(phase, k, ERRORS[error]())
    reply = rig.segment("the bowl")
    assert rig.plan.raised and rig.plan.raised[-1][0] == phase
    assert not reply.success
    assert f"{REQUEST_PHASES[phase]} failed on cpu" in reply.message
    assert ("fewer num_frames" in reply.message) and (("float16" in reply.message) == (error == "oom"))
    health = rig.worker.health.snapshot()
    assert health["faults"] == 1 and health["last_fault"] == reply.message
    still_live(rig, first)  # the other track goes on ...
    assert rig.worker.health.snapshot()["level"] == "ok"  # ... and the next good step clears the error
    assert rig.worker.tracks == {first: "the cup"}
    served = rig.segment("the plate")  # the next request is served
    assert served.success, served.message
    still_live(rig, served.track_id)
    still_live(rig, first)


@pytest.mark.parametrize("error", ERRORS)
def test_fault_in_the_shared_live_step_loses_one_frame_not_the_tracks(rig, error):
    first = tracked(rig)
    rig.settle()
    rig.plan.arm("live", 1, ERRORS[error]())
    rig.frame()
    rig.settle()
    health = rig.worker.health.snapshot()
    assert health["level"] == "error" and f"the live step of track {first} failed on cpu" in health["message"]
    still_live(rig, first)
    assert rig.worker.health.snapshot()["level"] == "ok"
    assert rig.worker.tracks == {first: "the cup"} and "stopped" not in rig.rec.kinds(first)


def test_fault_in_the_live_step_repeating_ends_the_tracks_with_the_reason(rig):
    first = tracked(rig)
    rig.settle()
    for _ in range(3):
        rig.plan.arm("live", 1, out_of_memory())
        rig.frame()
        rig.settle()
    assert rig.rec.kinds(first)[-1] == "stopped" and rig.worker.tracks == {}
    assert "3 frames in a row" in rig.worker.health.snapshot()["message"]
    served = rig.segment("the plate")
    assert served.success, served.message
    still_live(rig, served.track_id)


@pytest.mark.parametrize("error", ERRORS)
def test_fault_of_one_object_in_the_live_step_ends_that_object_only(rig, error):
    first = tracked(rig)
    second = tracked(rig, "the bowl")
    rig.settle()
    rig.plan.arm("live_object", 1, ERRORS[error](), obj_id=second)
    rig.frame()
    rig.settle()
    assert rig.rec.kinds(second)[-1] == "stopped" and "stopped" not in rig.rec.kinds(first)
    assert rig.worker.tracks == {first: "the cup"}
    assert f"tracking track {second} failed on cpu" in rig.worker.health.snapshot()["message"]
    still_live(rig, first)
    assert rig.worker.health.snapshot()["level"] == "ok"


def test_fault_while_nothing_is_tracked_leaves_the_worker_serving(rig):
    rig.pump_until(lambda: rig.index >= 10)
    rig.plan.arm("grounding", 2, out_of_memory())
    assert not rig.segment("the cup").success
    reply = rig.segment("the cup")
    assert reply.success, reply.message
    still_live(rig, reply.track_id)


def test_fault_of_one_object_in_the_real_tracker_is_named_by_the_tracker(engine):
    """The real streaming tracker reports a failure in one object's own work as that object's
    (``ObjectFault``), so the worker can end it alone; the shared encoder's failure stays itself."""
    import numpy as np

    from sa2va_i_ros.tracking import Grounding, StreamingTracker, TrackerConfig

    tracker = StreamingTracker(engine.model.sam2, TrackerConfig())
    frame = np.zeros((32, 32, 3), np.uint8)
    mask = np.zeros((32, 32), bool)
    mask[8:16, 8:16] = True
    for obj_id in (1, 2):
        tracker.add_object(Grounding([frame], [0], [0], [mask]), obj_id=obj_id)
    broken = tracker._objects[2]

    def fail(*args, **kwargs):
        raise RuntimeError("CUDA out of memory [injected]")

    broken.commit = fail
    with pytest.raises(ObjectFault) as raised:
        tracker.step(frame, 1)
    assert raised.value.obj_id == 2 and "out of memory" in str(raised.value.cause)
    del broken.commit
    tracker.runner.encode = fail
    with pytest.raises(RuntimeError, match="out of memory"):
        tracker.step(frame, 2)


def test_fault_stays_an_error_until_it_was_reported_once(rig):
    """A fault followed at once by good live steps still shows as ERROR on the next /diagnostics read."""
    first = tracked(rig)
    rig.plan.arm("grounding", 1, out_of_memory())
    assert not rig.segment("the bowl").success
    still_live(rig, first)  # good steps after the fault, before any read
    assert rig.worker.health.snapshot()["level"] == "error"
    still_live(rig, first)
    assert rig.worker.health.snapshot()["level"] == "ok"


@pytest.mark.parametrize("phase", ["grounding", "catch_up", "live_object"])
def test_fault_with_the_real_tiny_model_and_tracker(engine, phase):
    """The same containment with the real engine and streaming tracker (tiny checkpoint) in the threaded
    worker: an out-of-memory error in one phase; the tracked object goes on, the next request is served."""
    import time

    import torch
    from frames import frame_rgb, stamp_ns

    from sa2va_i_ros.runtime.frame_buffer import FrameBuffer
    from sa2va_i_ros.runtime.session import SegmentRequest, Session, Settings
    from sa2va_i_ros.runtime.worker import PerceptionWorker
    from sa2va_i_ros.testing.faults import FaultPlan, FaultyEngine, FaultyTracker
    from sa2va_i_ros.testing.threaded_rig import Recorder
    from sa2va_i_ros.tracking import StreamingTracker, TrackerConfig

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    plan, rec = FaultPlan(), Recorder()
    tracker = FaultyTracker(StreamingTracker(engine.model.sam2, TrackerConfig(prompt_policy="all",
                                                                              max_prompt_frames=64)), plan)
    session = Session(FaultyEngine(engine, plan), FrameBuffer(max_frames=40), settings=Settings(max_tracks=3),
                      tracker=tracker)
    worker = PerceptionWorker(session, rec)
    index = [0]

    def until(condition, limit=400):
        for _ in range(limit):
            if condition():
                return
            index[0] += 1
            worker.offer_frame({"i": index[0]}, stamp_ns(index[0]), frame_rgb(index[0]))
            time.sleep(0.02)
        raise AssertionError("not reached")

    def segment(query):
        done = []
        worker.submit(SegmentRequest(query, num_frames=2), on_reply=lambda r: None, on_done=done.append)
        until(lambda: bool(done))
        return done[0]

    try:
        until(lambda: index[0] >= 6)
        first = segment("the cup left of the bowl")
        assert first.success, first.message
        if phase == "live_object":
            second = segment("the red box")
            assert second.success, second.message
            plan.arm(phase, 1, out_of_memory(), obj_id=second.track_id)
            until(lambda: rec.kinds(second.track_id)[-1:] == ["stopped"])
        else:
            plan.arm(phase, 2 if phase == "grounding" else 1, out_of_memory())
            failed = segment("the red box")
            assert not failed.success and "out of memory" in failed.message and "on cpu" in failed.message
        after = stamp_ns(index[0])
        until(lambda: rec.outputs_of(first.track_id, after) >= 2)
        assert worker.tracks == {first.track_id: "the cup left of the bowl"}
        assert segment("the plate").success
        assert not worker.errors and not rec.disorder
    finally:
        worker.close("the test ended")
        torch.set_num_threads(threads)


def test_fault_release_empties_the_cuda_cache_on_cuda_only(monkeypatch):
    import torch

    from sa2va_i_ros.runtime.faults import release

    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    release("cpu")
    assert emptied == []
    release("cuda:0")
    assert emptied == [True]
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: (_ for _ in ()).throw(RuntimeError("no driver")))
    release("cuda:1")  # a failing release does not fail in turn


def test_fault_message_says_what_where_and_what_to_try():
    from sa2va_i_ros.runtime.faults import describe

    oom = describe("grounding", out_of_memory(), "cuda:0")
    assert oom.startswith("grounding failed on cuda:0: RuntimeError: CUDA out of memory")
    assert all(hint in oom for hint in ("fewer num_frames", "tracker_model", "float16"))
    other = describe("the catch-up", ValueError("bad shape"), "cpu")
    assert other.startswith("the catch-up failed on cpu: ValueError: bad shape") and "float16" not in other


def test_fault_while_publishing_loses_that_frames_messages_only(rig):
    first = tracked(rig)
    rig.settle()
    output = rig.rec.output

    def broken(out, frame):
        rig.rec.output = output
        raise RuntimeError("a publisher failed [injected]")

    rig.rec.output = broken
    rig.frame()
    rig.settle()
    health = rig.worker.health.snapshot()
    assert health["level"] == "error" and f"publishing the outputs of track {first} failed" in health["message"]
    still_live(rig, first)
    assert rig.worker.health.snapshot()["level"] == "ok" and not rig.worker.errors
