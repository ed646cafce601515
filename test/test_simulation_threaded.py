"""The real perception worker with its thread, fed by a camera thread, on stand-ins that spend real time.

What the discrete-event simulation cannot show: the worker's own thread, frames
arriving from another thread in the middle of a step, real-size (640x480)
frames, several objects (one answer with two [SEG]s), publishing on the
worker's thread, the asynchronous device stand-in (its calls return at once,
the worker waits at its synchronisations) in wall time. The checks are the
stream's invariants, never timings: every request answered exactly once and
joined, no exception on the worker's thread, output stamps increasing, no
frame processed twice by an object, every track in the last outputs.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from sa2va_i_ros.runtime.frame_buffer import FrameBuffer
from sa2va_i_ros.runtime.session import SegmentRequest, Session, Settings
from sa2va_i_ros.runtime.worker import PerceptionWorker
from sa2va_i_ros.testing.simulation import DESKTOP_GPU, AsyncDevice, StandInEngine, StandInTracker, WallClock

PROFILE = DESKTOP_GPU.scaled(0.5, "half_desktop")  # a little faster than a desktop GPU: a short test


class Recorder:
    def __init__(self, clock):
        self.clock, self.outputs, self.events = clock, [], []

    def output(self, out, frame) -> None:
        self.clock.advance(PROFILE.publish_s)  # messages built on the worker's thread
        self.outputs.append((frame.stamp_ns, tuple(o.track_id for o in out.objects)))

    def event(self, header, track_id, query, kind, score) -> None:
        self.events.append((track_id, kind))


def test_async_threaded_worker_camera_thread_real_size_frames_several_objects():
    clock = WallClock()
    device = AsyncDevice(clock)
    engine, tracker = StandInEngine(clock, PROFILE, device=device), StandInTracker(clock, PROFILE, device=device)
    session = Session(engine, FrameBuffer(max_frames=45), settings=Settings(prefill_chunk_tokens=128,
                                                                            vision_frames_per_step=1),
                      tracker=tracker)
    recorder = Recorder(clock)
    worker = PerceptionWorker(session, recorder, clock)
    failures = []
    run_once = worker.run_once

    def guarded() -> bool:
        try:
            return run_once()
        except Exception as exc:  # the worker would only print it
            failures.append(exc)
            raise
    worker.run_once = guarded
    stop, t0 = threading.Event(), time.monotonic()

    def camera() -> None:
        k, rgb = 0, np.zeros((480, 640, 3), np.uint8)
        while not stop.is_set():
            worker.offer_frame({"stamp_ns": k}, round(k * 1e9 / 30), rgb)
            k += 1
            stop.wait(max(0.0, t0 + k / 30 - time.monotonic()))

    def ask(query: str, answer: str = "Sure, [SEG].") -> list:
        engine.answer = answer
        replies, done = [], threading.Event()
        worker.submit(SegmentRequest(query), on_reply=replies.append, on_done=lambda r: done.set())
        assert done.wait(120), f"{query}: no answer"
        return replies

    feeder = threading.Thread(target=camera, daemon=True)
    feeder.start()
    try:
        time.sleep(0.5)
        answers = [ask("the cup"), ask("the two bowls", "Sure, [SEG] and [SEG]."), ask("the box")]
        time.sleep(0.5)
    finally:
        stop.set()
        feeder.join()
        worker.close("test over")
    assert failures == []
    assert [len(r) for r in answers] == [1, 1, 1] and all(r[0].success for r in answers), answers
    ids = [i for r in answers for i in r[0].track_ids]
    assert len(ids) == 4 and len(set(ids)) == 4
    assert answers[1][0].objects[0].mask.shape == (480, 640)
    stamps = [s for s, _ in recorder.outputs]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert set(recorder.outputs[-1][1]) == set(ids)
    for key, processed in tracker.processed.items():
        assert len(processed) == len(set(processed)), f"track {key} processed a frame twice"
    assert [k for i, k in recorder.events if k == "started"] == ["started"] * 4
    assert worker.device_time.count > 0 and device.pending_s == 0.0
