"""Bounded steps and honest budgets (issue 21): several objects on the asynchronous simulation, and the longest
worker step with the real tracker at real size.

* ``runtime.<profile>.objects<k>.*`` (k = 1, 2, 4; the simulation of
  ``sa2va_i_ros/testing/simulation`` with the asynchronous device stand-in and
  the non-linear tracker costs, a 30 Hz camera): k objects tracked, then a new
  query. ``join_live_s``: from its reply to its first live output (goal: within
  max_catch_up_sec 1 s + one frame period); ``catch_up_s``: from the start of
  its seeding to that output (the budget's span); ``max_gap_ms``: the tracked
  objects' largest output gap while the new query is grounded (goal: under 3
  of their live steps, ``gap_goal_ms``).
* ``runtime.real_t.*``: the real worker (synchronous, this CPU, one torch
  thread) with the tiny Sa2VA checkpoint for grounding and SAM 2.1 Hiera-T with
  random weights at real size (1024 input, 640x480 frames) as the tracker,
  during a query whose ``num_frames`` frames all prompt: ``longest_step_ms``
  (every step), ``longest_background_step_ms``, ``longest_seeding_step_ms``,
  ``encoder_pass_ms`` (one Hiera-T image encoder pass, measured in the same
  run), ``live_step_ms`` (a live step: encoder and memory attention) and
  ``seeding_step_ratio`` (longest seeding step / encoder pass; goal <= 1.2),
  the same in this process's CPU time (``*_cpu_ms``, ``seeding_step_cpu_ratio``:
  robust to the other load of a shared machine, the torch thread being one).

    python -m bench.run --only steps
    python -m bench.bench_steps [--frames 5] [--sim-only]
"""

from __future__ import annotations

import argparse
import collections
import json
import time

CAMERA_HZ = 30.0


def simulated(out: dict) -> None:
    from sa2va_i_ros.runtime.session import Settings
    from sa2va_i_ros.testing.simulation import DESKTOP_GPU, JETSON, Simulation

    for p in (DESKTOP_GPU, JETSON):
        for k in (1, 2, 4):
            sim = Simulation(p, CAMERA_HZ, Settings(max_queued_requests=8, prefill_chunk_tokens=128,
                                                    vision_frames_per_step=1))
            g = 4 * p.grounding_s()
            tracked = [sim.request(2.0 + g * i, f"object {i}") for i in range(k)]
            new = sim.request(4.0 + g * k, "the new one")
            sim.run(8.0 + g * (k + 1))
            rec = new.ticket.record
            key = f"runtime.{p.name}.objects{k}"
            out[f"{key}.join_live_s"] = round(sim.join_live_s(new), 3)
            out[f"{key}.catch_up_s"] = round(rec.first_live - rec.seeded, 3)
            out[f"{key}.max_gap_ms"] = round(max(sim.max_gap(r.reply.track_id, rec.submitted, rec.seeded)
                                                 for r in tracked) * 1e3, 1)
            out[f"{key}.gap_goal_ms"] = round(3 * (p.live_s(k) + p.publish_s) * 1e3, 1)
    out["runtime.objects.note"] = (f"simulated, asynchronous device, {CAMERA_HZ:g} Hz camera, max_catch_up_sec 1; "
                                   "a live step = encoder + per-object part + publishing "
                                   f"({DESKTOP_GPU.encode_s * 1e3:g} + {DESKTOP_GPU.object_s * 1e3:g} k + "
                                   f"{DESKTOP_GPU.publish_s * 1e3:g} ms desktop, x4 Jetson)")


def real_size(out: dict, frames: int = 5) -> None:
    import tempfile

    import numpy as np
    import torch

    from bench.bench_tracker import frame
    from sa2va_i_ros.grounding.engine import GroundingEngine
    from sa2va_i_ros.runtime.frame_buffer import FrameBuffer
    from sa2va_i_ros.runtime.session import SegmentRequest, Session, Settings
    from sa2va_i_ros.runtime.worker import PerceptionWorker
    from sa2va_i_ros.runtime.worker.job import Phase
    from sa2va_i_ros.testing.tiny_sa2va import write_tiny_checkpoint
    from sa2va_i_ros.tracking import StreamingTracker
    from sa2va_i_ros.tracking.models import build_tracker_model

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        engine = GroundingEngine.load(str(write_tiny_checkpoint(tmp)))
    tracker = StreamingTracker(build_tracker_model("sam2.1_hiera_t"))
    session = Session(engine, FrameBuffer(max_frames=30), tracker=tracker,
                      settings=Settings(num_frames=frames, prefill_chunk_tokens=128, vision_frames_per_step=1))
    worker = PerceptionWorker(session, threaded=False)
    worker.step_log = collections.deque()
    seeding: list[tuple[float, float]] = []  # (wall, CPU) seconds
    background = worker._background_step

    def noted() -> None:  # the seeding steps' own durations
        job, t0, c0 = worker.job, time.monotonic(), time.process_time()
        phase = job.phase if job is not None else None
        background()
        if phase is Phase.SEEDING:
            seeding.append((time.monotonic() - t0, time.process_time() - c0))
    worker._background_step = noted
    for k in range(frames):
        worker.offer_frame({"k": k}, round(k * 1e9 / CAMERA_HZ), frame(k))
    replies: list = []
    t0 = time.monotonic()
    worker.submit(SegmentRequest("the red box"), on_reply=replies.append)
    worker.run_until_idle()
    query_s = time.monotonic() - t0
    worker.offer_frame({"k": frames}, round(frames * 1e9 / CAMERA_HZ), frame(frames))  # one live step
    worker.run_until_idle()
    passes = []
    for _ in range(2):
        with torch.inference_mode():
            t0, c0 = time.monotonic(), time.process_time()
            tracker.runner.encode(tracker.runner.pixels(np.ascontiguousarray(frame(0))))
            passes.append((time.monotonic() - t0, time.process_time() - c0))
    encoder_s, encoder_cpu_s = min(w for w, _ in passes), min(c for _, c in passes)
    steps = list(worker.step_log)
    key = "runtime.real_t"
    live = [b - a for kind, a, b in steps if kind == "live"]
    out[f"{key}.reply_ok"] = bool(replies and replies[0].success)
    out[f"{key}.longest_step_ms"] = round(max(b - a for _, a, b in steps) * 1e3, 1)
    out[f"{key}.longest_background_step_ms"] = round(max(b - a for k, a, b in steps if k == "background") * 1e3, 1)
    out[f"{key}.longest_seeding_step_ms"] = round(max(w for w, _ in seeding) * 1e3, 1)
    out[f"{key}.longest_seeding_step_cpu_ms"] = round(max(c for _, c in seeding) * 1e3, 1)
    out[f"{key}.seeding_steps"] = len(seeding)
    out[f"{key}.encoder_pass_ms"] = round(encoder_s * 1e3, 1)
    out[f"{key}.encoder_pass_cpu_ms"] = round(encoder_cpu_s * 1e3, 1)
    out[f"{key}.live_step_ms"] = round(max(live) * 1e3, 1) if live else None
    out[f"{key}.seeding_step_ratio"] = round(max(w for w, _ in seeding) / encoder_s, 2)
    out[f"{key}.seeding_step_cpu_ratio"] = round(max(c for _, c in seeding) / encoder_cpu_s, 2)
    out[f"{key}.query_s"] = round(query_s, 1)
    out[f"{key}.note"] = (f"this CPU, one torch thread, synchronous worker: tiny Sa2VA grounding, SAM 2.1 Hiera-T "
                          f"random weights at 1024 input, 640x480 frames, a query with num_frames {frames} (every "
                          "window frame prompts), then one live step")


def run(out: dict, frames: int = 5) -> None:
    simulated(out)
    real_size(out, frames)


if __name__ == "__main__":
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("--frames", type=int, default=5)
    args.add_argument("--sim-only", action="store_true")
    opts = args.parse_args()
    results: dict = {}
    simulated(results) if opts.sim_only else run(results, opts.frames)
    print(json.dumps(results, indent=2))
