"""A threaded stress test of the real worker: many threads at once, a seeded random schedule, invariants.

Threads offer frames, submit and cancel requests, stop tracks, change settings,
inject faults and cycle the lifecycle (close the worker, make a new one, as
cleanup + configure do) against the real threaded ``PerceptionWorker`` on the
simulation's stand-ins (every model call also sleeps a little, so calls from
other threads land in the middle of steps; the interpreter switches threads
every 10 µs). Invariants: every request gets exactly one reply and one done,
no exception escapes a worker step or a calling thread, each track's output
stamps increase, and what the worker holds stays within its bounds.

The schedule is seeded (each thread draws from its own ``random.Random``); the
interleaving is the machine's, so each run explores a different one. Bounded
by counts of operations, not time: about 20-40 s on a 2-core machine.
"""

from __future__ import annotations

import contextlib
import random
import sys
import threading
import time

import pytest

from sa2va_i_ros.runtime.frame_buffer import FrameBuffer
from sa2va_i_ros.runtime.regrounding import LOG_MAX
from sa2va_i_ros.runtime.session import SegmentRequest, Settings
from sa2va_i_ros.runtime.worker.job import held_bytes
from sa2va_i_ros.testing.faults import out_of_memory
from sa2va_i_ros.testing.threaded_rig import Rig

SEED = 2126
CYCLES = 5  # lifecycles (a worker each)
OPS = 150  # requests per cycle
FRAME_BYTES = 24 * 32 * 3
QUERIES = ["the cup", "the bowl", "the plate", "the red box", "the mug"]


class Requests:
    """Every request submitted and how many times each callback fired."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls: list[dict] = []

    def submit(self, rig: Rig, request: SegmentRequest):
        entry = {"reply": 0, "done": 0, "request": request}
        with self.lock:
            self.calls.append(entry)

        def count(key):
            def callback(reply):
                with self.lock:
                    entry[key] += 1
            return callback

        return rig.worker.submit(request, on_reply=count("reply"), on_done=count("done"))


def new_rig() -> Rig:
    settings = Settings(max_tracks=3, max_queued_requests=2, prefill_chunk_tokens=256, vision_frames_per_step=1,
                        reground_after_sec=0.3, reground_window_sec=0.5, lost_after_frames=3)
    return Rig(settings=settings, delay_s=0.0003,
               buffer=FrameBuffer(max_frames=40, max_seconds=5.0, max_bytes=12 * FRAME_BYTES))


@pytest.fixture
def fast_switching():
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(before)


def test_stress_threads_on_the_real_worker_keep_every_invariant(fast_switching):
    requests, thread_errors, violations = Requests(), [], []
    holder = {"rig": new_rig()}
    rigs = [holder["rig"]]
    stop = threading.Event()

    def guarded(fn):
        def run():
            try:
                fn()
            except Exception as exc:  # an exception in a calling thread is a failure too
                thread_errors.append(exc)
                stop.set()
        return run

    def camera():
        rng = random.Random(SEED)
        while not stop.is_set():
            rig = holder["rig"]
            rig.frame()
            time.sleep(rng.uniform(0.0, 0.004))

    def monitor():
        while not stop.is_set():
            w = holder["rig"].worker
            job = w.job
            if job is not None and held_bytes(job.held) > w.session.buffer.max_bytes:
                violations.append(f"held {held_bytes(job.held)} bytes")
            sizes = (len(w.records), len(w.regrounder.log), len(w.session.buffer), w.queue_length())
            # the queue: max_queued_requests waiting users, the user next in line while a re-grounding runs,
            # and one re-grounding at a time
            if any(n > bound for n, bound in zip(sizes, (100, LOG_MAX, 40, 2 + 2), strict=True)):
                violations.append(f"records, log, buffer, queue: {sizes}")
            time.sleep(0.002)

    def stopper():
        rng = random.Random(SEED + 2)
        while not stop.is_set():
            w = holder["rig"].worker
            ids = list(w.tracks)
            if ids and rng.random() < 0.5:
                with contextlib.suppress(ValueError):  # stopped meanwhile
                    w.stop(rng.choice([0, *ids]))
            time.sleep(rng.uniform(0.0, 0.05))

    def tuner():
        rng = random.Random(SEED + 3)
        while not stop.is_set():
            holder["rig"].worker.update(presence_threshold=rng.choice([0.3, 0.5, 0.95]),
                                        lost_after_frames=rng.randint(1, 5), reground_after_sec=rng.choice([0.0, 0.3]))
            time.sleep(rng.uniform(0.0, 0.03))

    def faults():
        rng = random.Random(SEED + 4)
        while not stop.is_set():
            plan = holder["rig"].plan
            phase = rng.choice(["grounding", "seeding", "catch_up", "live", "live_object"])
            if not plan.armed(phase):
                plan.arm(phase, rng.randint(1, 20), out_of_memory() if rng.random() < 0.5 else ValueError("bad"))
            time.sleep(rng.uniform(0.05, 0.3))

    def client():  # the main schedule: requests, cancels, lifecycle cycles
        rng = random.Random(SEED + 1)
        for cycle in range(CYCLES):
            rig = holder["rig"]
            for _ in range(OPS):
                if stop.is_set():
                    return
                request = SegmentRequest(rng.choice(QUERIES), num_frames=rng.randint(1, 5),
                                         track=rng.random() < 0.8, window_sec=rng.choice([0.0, 0.5]))
                ticket = requests.submit(rig, request)
                if rng.random() < 0.25:
                    time.sleep(rng.uniform(0.0, 0.02))
                    rig.worker.cancel(ticket)
                time.sleep(rng.uniform(0.0, 0.03))
            if cycle < CYCLES - 1:  # cleanup + configure: a new worker; the old one answers what it had
                fresh = new_rig()
                rigs.append(fresh)
                holder["rig"] = fresh
                rig.worker.close("the node was cleaned up", timeout=30.0)
        time.sleep(0.3)

    helpers = [threading.Thread(target=guarded(f), name=f.__name__)
               for f in (camera, monitor, stopper, tuner, faults)]
    main = threading.Thread(target=guarded(client), name="client")
    for t in [*helpers, main]:
        t.start()
    main.join(300)
    stop.set()
    for t in helpers:
        t.join(30)
    holder["rig"].worker.close("the test ended", timeout=30.0)

    assert not main.is_alive() and not any(t.is_alive() for t in helpers)
    assert not thread_errors, thread_errors
    assert not violations, violations[:5]
    for rig in rigs:
        assert not rig.worker.errors, list(rig.worker.errors)  # nothing escaped a step
        assert not rig.worker._thread.is_alive()
        assert not rig.rec.disorder, rig.rec.disorder[:5]
    with requests.lock:
        wrong = [c for c in requests.calls if (c["reply"], c["done"]) != (1, 1)]
        served = sum(1 for c in requests.calls)
    assert served == CYCLES * OPS and not wrong, wrong[:5]
    outputs = sum(len(rig.rec.outputs) for rig in rigs)
    assert outputs > 0 and sum(rig.plan.raised.__len__() for rig in rigs) > 0  # it tracked, and faults hit
