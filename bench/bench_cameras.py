"""Several cameras, one model (issue 24): each camera's rate on the simulation, and the memory of a second camera.

* ``cameras.<profile>.*`` (simulated, ``testing/simulation/cameras.py``, at
  desktop-GPU and Jetson timings): two 30 Hz cameras (the wrist's frames 13 ms
  after the head's), one query for every camera (``"*"``) at t = 1 s; from 1 s
  after both joined to the end: ``rate_hz_head``, ``rate_hz_wrist``,
  ``rate_fairness`` (lowest / highest; goal >= 0.8), ``single_camera_rate_hz``
  (the head camera alone, same query, same span), and
  ``stalled_other_rate_ratio``: the head's rate while the wrist camera sends
  nothing (t = 25-60 s) over its rate alone in the same span (goal >= 0.97).
* ``cameras.memory_*`` (measured here): one process holding the model with one
  camera, then with two (``build_sessions``: one engine, one SAM2, a session
  each), each in its own fresh process. The model is the random-weight
  Sa2VA-i-1B-size checkpoint of ``bench_load`` (InternViT-300M, Qwen2.5-0.5B,
  SAM 2.0 Hiera-L), loaded with ``GroundingEngine.load`` in float32 on the CPU.
  Per camera: 60 frames of 480x640 RGB pushed into its buffer
  (``Session.push_frame``), one object seeded straight into its tracker from a
  mask on the newest buffered frame (random weights never answer [SEG], so the
  language model is not run), then two live steps on new frames, the cameras in
  turn (a Hiera-L live step takes about a minute on a shared 2-core CPU: five
  per camera would keep the two-camera process busy for over ten minutes).
  Memory = peak RSS (VmHWM, reset after the imports) minus RSS after the
  imports: the weights are included. ``memory_ratio_two_nodes`` is two
  one-camera processes (computed: twice the one-camera figure, not run side by
  side) over the two-camera process.

    python -m bench.run --only cameras
    python -m bench.bench_cameras [--sim-only]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.bench_streaming import proc_status_mb

ROOT = Path(__file__).resolve().parents[1]
CAMERA_HZ = 30.0
HEAD, WRIST = "head", "wrist"
WRIST_START = 0.013  # the wrist camera's first frame: the cameras are not in phase
QUERY_AT, RUN_S = 1.0, 40.0  # the query for every camera, the end of the run (simulated s)
STALL = (25.0, 60.0)  # the wrist camera sends nothing (simulated s)
FRAME = (480, 640)
BUFFERED = 60  # frames pushed into each camera's buffer before its object is seeded
PROMPTS = 1  # newest buffered frames the seeded object is prompted on
LIVE_STEPS = 2  # live steps per camera on new frames (a Hiera-L step takes about a minute on a shared 2-core CPU)
CHILD_TIMEOUT_S = 900


def fairness(rates: list[float]) -> float:
    """Lowest rate over highest (1.0: every camera served alike; 0 when one camera got nothing)."""
    return min(rates) / max(rates) if max(rates) > 0 else 0.0


def _joined(req) -> float:
    if not req.done:
        raise RuntimeError(f"the request {req.query!r} on camera {req.camera!r} never joined")
    return req.done[0][0]


def simulated(out: dict) -> None:
    from sa2va_i_ros.testing.simulation import DESKTOP_GPU, JETSON
    from sa2va_i_ros.testing.simulation.cameras import Camera, CameraSimulation

    for p in (DESKTOP_GPU, JETSON):
        key = f"cameras.{p.name}"
        two = CameraSimulation(p, {HEAD: Camera(CAMERA_HZ), WRIST: Camera(CAMERA_HZ, start=WRIST_START)})
        req = two.request(QUERY_AT, "the cup", "*")
        two.run(RUN_S)
        start = _joined(req) + 1.0
        rates = [two.rate(c, start, RUN_S) for c in (HEAD, WRIST)]
        one = CameraSimulation(p, {HEAD: Camera(CAMERA_HZ)})
        one.request(QUERY_AT, "the cup")
        one.run(STALL[1])
        out[f"{key}.joined_s"] = round(_joined(req), 3)
        out[f"{key}.rate_hz_head"] = round(rates[0], 2)
        out[f"{key}.rate_hz_wrist"] = round(rates[1], 2)
        out[f"{key}.rate_fairness"] = round(fairness(rates), 3)
        out[f"{key}.single_camera_rate_hz"] = round(one.rate(HEAD, start, RUN_S), 2)

        stalled = CameraSimulation(p, {HEAD: Camera(CAMERA_HZ),
                                       WRIST: Camera(CAMERA_HZ, stalls=(STALL,), start=WRIST_START)})
        req = stalled.request(QUERY_AT, "the cup", "*")
        stalled.run(STALL[1])
        if _joined(req) >= STALL[0]:
            raise RuntimeError(f"{p.name}: both cameras joined only at {_joined(req):.2f} s, after the stall began")
        span = (STALL[0] + 1.0, STALL[1])
        out[f"{key}.stalled_rate_hz_head"] = round(stalled.rate(HEAD, *span), 2)
        out[f"{key}.stalled_other_rate_ratio"] = round(stalled.rate(HEAD, *span) / one.rate(HEAD, *span), 3)
    out["cameras.simulated_note"] = (
        f"simulated, asynchronous device: two {CAMERA_HZ:g} Hz cameras (the wrist's {WRIST_START * 1e3:g} ms later), "
        f"one query for both ('*') at {QUERY_AT:g} s; rates from 1 s after both joined to {RUN_S:g} s; stalled: the "
        f"wrist camera sends nothing from {STALL[0]:g} to {STALL[1]:g} s, head rate over {STALL[0] + 1:g}-"
        f"{STALL[1]:g} s vs the head camera alone")


# -- memory: one process, one model, one or two cameras ------------------------------------------------------
def _frame(k: int, camera: int):
    """A 480x640 frame: grey, a bright square that moves by a pixel a frame (each camera its own colour)."""
    import numpy as np

    h, w = FRAME
    rgb = np.full((h, w, 3), 96, np.uint8)
    y, x = h // 3 + k % 40, w // 3 + k % 40
    rgb[y: y + h // 3, x: x + w // 3] = (220, 60 + 80 * camera, 40)
    return rgb


def _mask(k: int):
    import numpy as np

    h, w = FRAME
    mask = np.zeros(FRAME, bool)
    y, x = h // 3 + k % 40, w // 3 + k % 40
    mask[y: y + h // 3, x: x + w // 3] = True
    return mask


def _note(text: str) -> None:
    print(f"[cameras child] {text}", file=sys.stderr, flush=True)


def measure(cameras: int, directory: Path, live_steps: int = LIVE_STEPS) -> dict:
    """Runs in a child process: imports, then the model and ``cameras`` cameras, peak RSS over the whole."""
    import torch
    import transformers  # noqa: F401  (the tokenizer's, imported before the measurement)

    from sa2va_i_ros.grounding.engine import GroundingEngine
    from sa2va_i_ros.runtime.frame_buffer import FrameBuffer
    from sa2va_i_ros.runtime.session import Settings
    from sa2va_i_ros.runtime.worker.cameras import build_sessions
    from sa2va_i_ros.tracking.grounding import Grounding

    names = [HEAD, WRIST, *(f"camera{k}" for k in range(2, cameras))][:cameras]
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = proc_status_mb("VmRSS")
    t0 = time.perf_counter()
    engine = GroundingEngine.load(str(directory))  # float32 on the CPU
    load_s = time.perf_counter() - t0
    _note(f"loaded in {load_s:.0f} s")
    loaded = proc_status_mb("VmRSS")
    sessions = build_sessions(engine, names, lambda: FrameBuffer(max_frames=300, max_seconds=30.0,
                                                                 max_bytes=512 << 20), Settings())
    runners = {id(s.tracker.runner) for s in sessions.values()}
    period_ns = round(1e9 / CAMERA_HZ)
    steps: list[float] = []
    seed_s: list[float] = []
    for c, session in enumerate(sessions.values()):
        for k in range(BUFFERED):
            stamp = k * period_ns + c * round(WRIST_START * 1e9)
            session.push_frame({"stamp_ns": stamp, "camera": names[c]}, stamp, _frame(k, c))
        window = session.buffer.window()[-PROMPTS:]
        grounding = Grounding([f.rgb for f in window], [f.header for f in window], list(range(len(window))),
                              [_mask(BUFFERED - len(window) + i) for i in range(len(window))])
        t1 = time.perf_counter()
        session.tracker.add_object(grounding, obj_id=c + 1)  # seed on the prompts, then join
        seed_s.append(time.perf_counter() - t1)
        _note(f"{names[c]}: {BUFFERED} frames buffered, object seeded in {seed_s[-1]:.0f} s")
    tracked = []
    for k in range(BUFFERED, BUFFERED + live_steps):  # the cameras in turn, as CameraWorkers serves them
        for c, session in enumerate(sessions.values()):
            stamp = k * period_ns + c * round(WRIST_START * 1e9)
            pushed = session.push_frame({"stamp_ns": stamp, "camera": names[c]}, stamp, _frame(k, c))
            t1 = time.perf_counter()
            output = session.live_step(pushed.frame)
            steps.append(time.perf_counter() - t1)
            _note(f"{names[c]}: live step {k - BUFFERED + 1} in {steps[-1]:.0f} s")
            tracked.append(len(output.objects) if output is not None else 0)
    peak = proc_status_mb("VmHWM")
    return {"cameras": cameras, "peak_mb": peak - before, "rss_before_mb": before, "weights_rss_mb": loaded - before,
            "rss_end_mb": proc_status_mb("VmRSS") - before, "load_s": load_s, "seed_s": seed_s,
            "live_step_s": steps, "tracked_per_step": tracked, "sam2_runners": len(runners),
            "buffered_mb": sum(s.buffer.nbytes for s in sessions.values()) / 2**20,
            "params": sum(p.numel() for p in engine.model.parameters()), "torch_threads": torch.get_num_threads(),
            "seconds": time.perf_counter() - t0}


def _child(cameras: int, directory: Path) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bench.bench_cameras", "--child", str(cameras), str(directory)],
                          cwd=ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    if proc.returncode != 0:
        raise RuntimeError(f"bench_cameras --child {cameras} failed:\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - t0
    return result


def memory(out: dict) -> None:
    from bench.bench_load import _warm_page_cache, ensure_model

    directory = ensure_model("1b")
    runs = {}
    for cameras in (1, 2):
        _warm_page_cache(directory)
        runs[cameras] = _child(cameras, directory)
        r = runs[cameras]
        print(f"[cameras] {cameras} camera(s): peak {r['peak_mb']:.0f} MB, child {r['wall_s']:.0f} s", flush=True)
    one, two = runs[1]["peak_mb"], runs[2]["peak_mb"]
    out["cameras.memory_mb_one"] = round(one, 1)
    out["cameras.memory_mb_two"] = round(two, 1)
    out["cameras.memory_ratio_two_vs_one"] = round(two / one, 3)
    out["cameras.memory_mb_two_nodes"] = round(2 * one, 1)
    out["cameras.memory_ratio_two_nodes"] = round(2 * one / two, 3)
    out["cameras.memory_mb_second_camera"] = round(two - one, 1)
    out["cameras.weights_rss_mb"] = round(runs[1]["weights_rss_mb"], 1)
    out["cameras.children"] = {  # each child's own figures (MB over the RSS after its imports; seconds)
        str(c): {"peak_mb": round(r["peak_mb"], 1), "rss_after_load_mb": round(r["weights_rss_mb"], 1),
                 "rss_end_mb": round(r["rss_end_mb"], 1), "buffered_mb": round(r["buffered_mb"], 1),
                 "seed_s": [round(s, 1) for s in r["seed_s"]], "live_step_s": [round(s, 1) for s in r["live_step_s"]],
                 "wall_s": round(r["wall_s"], 1)} for c, r in runs.items()}
    if runs[2]["sam2_runners"] != 1 or min(runs[2]["tracked_per_step"]) != 1:
        raise RuntimeError(f"two cameras: {runs[2]['sam2_runners']} SAM2 runners, objects per live step "
                           f"{runs[2]['tracked_per_step']} (expected one shared runner, one object each)")
    out["cameras.memory_note"] = (
        f"measured here, each configuration a fresh process: random-weight Sa2VA-i-1B-size checkpoint "
        f"({runs[1]['params'] / 1e9:.2f} B parameters) loaded with GroundingEngine.load, float32 on the CPU "
        f"({runs[1]['torch_threads']} torch threads); per camera {BUFFERED} frames of {FRAME[0]}x{FRAME[1]} RGB "
        f"buffered, one object seeded in its tracker from a mask on its {PROMPTS} newest frame(s) (no language model "
        f"call: random weights never answer [SEG]), {LIVE_STEPS} live steps on new frames, cameras in turn; peak RSS "
        f"(VmHWM) minus RSS after the imports; two nodes = 2 x the one-camera process, computed, not run together")


def run(out: dict, sim_only: bool = False) -> dict:
    simulated(out)
    if not sim_only:
        memory(out)
        out["cameras.conditions"] = f"load average {os.getloadavg()[0]:.1f} at the end"
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", nargs=2, metavar=("CAMERAS", "MODEL"))
    parser.add_argument("--sim-only", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(int(args.child[0]), Path(args.child[1]))))
    else:
        print(json.dumps(run({}, args.sim_only), indent=2))
