"""The perception worker's real-time figures: joining the live stream, and the gap of a tracked object.

* ``runtime.<profile>.*`` come from the simulation (``sa2va_i_ros/testing/simulation``):
  the real worker and session, stand-ins that spend the "desktop_gpu" or
  "jetson" profile's time per model call, a 30 Hz camera; one object tracked
  since 5 s, a new query at 10 s. ``join_live_s``: from the reply to the first
  live output holding the new object (goal: within max_catch_up_sec + one
  frame period); ``catch_up_s``: from the end of its grounding to that output
  (the budget's span); ``max_gap_ms``: the tracked object's largest output gap
  while the new query is grounded (goal: under 3 frame periods of the tracker,
  3 x the profile's live step with one object); ``max_gap_catch_up_ms``: the
  same during the new object's catch-up and join (its live step then tracks
  two objects).
* ``runtime.cpu_tiny.*``: the same scenario measured in wall time on this
  machine, threaded worker, the tiny checkpoint (real model and tracker),
  a 15 Hz camera thread; the goals use this machine's measured tracker step.

    python -m bench.run --only runtime
"""

from __future__ import annotations

import collections
import itertools
import statistics
import threading
import time

CAMERA_HZ = 30.0


def simulated(out: dict) -> None:
    from sa2va_i_ros.runtime.session import Settings
    from sa2va_i_ros.testing.simulation import DESKTOP_GPU, JETSON, Simulation

    for profile in (DESKTOP_GPU, JETSON):
        sim = Simulation(profile, CAMERA_HZ, Settings(prefill_chunk_tokens=128, vision_frames_per_step=1))
        first = sim.request(5.0, "the cup")
        second = sim.request(10.0, "the bowl")
        sim.run(10.0 + 4 * profile.grounding_s() + 5.0)
        rec = second.ticket.record
        key = f"runtime.{profile.name}"
        out[f"{key}.join_live_s"] = round(sim.join_live_s(second), 3)
        out[f"{key}.catch_up_s"] = round(rec.first_live - rec.seeded, 3)
        track = first.reply.track_id
        out[f"{key}.max_gap_ms"] = round(sim.max_gap(track, rec.submitted, rec.seeded) * 1e3, 1)
        out[f"{key}.gap_goal_ms"] = round(3 * profile.track_s * 1e3, 1)
        out[f"{key}.max_gap_catch_up_ms"] = round(sim.max_gap(track, rec.seeded, rec.first_live) * 1e3, 1)
        out[f"{key}.grounding_s"] = round(rec.seeded - rec.started, 2)
        out[f"{key}.frames_thinned"] = rec.skipped
    out["runtime.note"] = (f"simulated: {CAMERA_HZ:g} Hz camera, max_catch_up_sec 1, grounding about "
                           f"{DESKTOP_GPU.grounding_s():.2f} s / {JETSON.grounding_s():.2f} s of steps, "
                           f"{DESKTOP_GPU.track_s * 1e3:g} / {JETSON.track_s * 1e3:g} ms per frame and object")


def measured_tiny(out: dict, camera_hz: float = 15.0) -> None:
    """The same scenario with the real tiny model and tracker, threaded, in wall time."""
    import tempfile

    import numpy as np
    import torch

    from sa2va_i_ros.grounding.engine import GroundingEngine
    from sa2va_i_ros.runtime.frame_buffer import FrameBuffer
    from sa2va_i_ros.runtime.session import SegmentRequest, Session, Settings
    from sa2va_i_ros.runtime.worker import PerceptionWorker
    from sa2va_i_ros.testing.tiny_sa2va import write_tiny_checkpoint

    torch.set_num_threads(1)
    outputs: list[tuple[float, tuple[int, ...]]] = []

    class Emitter:
        def output(self, o, frame):
            outputs.append((time.monotonic(), tuple(x.track_id for x in o.objects)))

        def event(self, *args):
            pass

    with tempfile.TemporaryDirectory() as tmp:
        engine = GroundingEngine.load(str(write_tiny_checkpoint(tmp)))
    session = Session(engine, FrameBuffer(max_frames=150),
                      settings=Settings(prefill_chunk_tokens=128, vision_frames_per_step=1))
    worker = PerceptionWorker(session, Emitter())
    worker.step_log = collections.deque(maxlen=100_000)
    stop = threading.Event()

    def camera():
        rng, k, t0 = np.random.default_rng(0), 0, time.monotonic()
        while not stop.is_set():
            frame = rng.integers(0, 60, (96, 128, 3), dtype=np.uint8)
            frame[20:60, 10 + k % 60:50 + k % 60] = (220, 40, 40)
            worker.offer_frame({"k": k}, int(1e9 * k / camera_hz), frame)
            k += 1
            time.sleep(max(0.0, t0 + k / camera_hz - time.monotonic()))

    def ask(query: str):
        done = threading.Event()
        replies = []
        ticket = worker.submit(SegmentRequest(query), on_reply=lambda r: replies.append((time.monotonic(), r)),
                               on_done=lambda r: done.set())
        done.wait(600)
        return ticket, replies[0]

    feeder = threading.Thread(target=camera, daemon=True)
    feeder.start()
    try:
        time.sleep(3.0)
        _, (_, r1) = ask("the cup")
        time.sleep(3.0)
        second, (replied, _) = ask("the bowl")
        time.sleep(2.0)
    finally:
        stop.set()
        feeder.join()
        worker.close("bench over")
    rec = second.record
    track1 = [t for t, ids in outputs if r1.track_id in ids]
    during = [b - a for a, b in itertools.pairwise(track1) if b >= rec.submitted and a <= rec.seeded]
    steps = [t for t, ids in outputs if ids == (r1.track_id,) and t < rec.submitted]
    live_step = statistics.median(b - a for a, b in itertools.pairwise(steps)) if len(steps) > 2 else None
    key = "runtime.cpu_tiny"
    out[f"{key}.join_live_s"] = round(rec.first_live - replied, 3) if rec.first_live else None
    out[f"{key}.catch_up_s"] = round(rec.first_live - rec.seeded, 3) if rec.first_live else None
    out[f"{key}.max_gap_ms"] = round(max(during) * 1e3, 1) if during else None
    out[f"{key}.output_period_ms"] = round(live_step * 1e3, 1) if live_step else None
    steps = list(worker.step_log)
    live = [b - a for kind, a, b in steps if kind == "live"]
    background = [b - a for kind, a, b in steps if kind == "background"]
    out[f"{key}.live_step_ms"] = round(statistics.median(live) * 1e3, 1) if live else None
    out[f"{key}.longest_background_step_ms"] = round(max(background) * 1e3, 1) if background else None
    out[f"{key}.frames_dropped_stale"] = worker.counts["frames_dropped_stale"]
    out[f"{key}.frames_thinned"] = worker.counts["frames_thinned"]
    out[f"{key}.note"] = (f"wall time on this machine: tiny checkpoint, one torch thread, {camera_hz:g} Hz camera "
                          "thread, threaded worker; output_period_ms is the tracked object's output period before "
                          "the second query (its tracker frame period under this machine's load)")


def run(out: dict) -> None:
    simulated(out)
    measured_tiny(out)


if __name__ == "__main__":
    import json

    results: dict = {}
    run(results)
    print(json.dumps(results, indent=2))
