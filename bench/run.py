"""``make bench``: every measurement in one run -> bench/results/latest.json and docs/BENCHMARKS.md.

Ratios are measured side by side in this run; absolute figures are labelled
with the machine they ran on. Nothing here is a pass/fail test: the goals are
listed beside the figures.

    python -m bench.run [--quick]     # --quick: 400 streaming frames instead of 2000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "latest.json"
DOC = ROOT / "docs" / "BENCHMARKS.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
PARTS = ("streaming", "buffer", "node", "grounding", "load", "load8b", "runtime", "faults", "steps", "cameras",
         "tracker", "onnx", "preprocess", "gpu")


def _join_rows(profile: str, name: str, k: int, gap_ms: int) -> list[tuple[str, str, str]]:
    """The bench 'steps' rows of one simulated profile with k objects tracked (goal: 3 live steps of k)."""
    key = f"runtime.{profile}.objects{k}"
    return [(f"{key}.join_live_s", "<= 1.033", f"simulated {name}, asynchronous device, "
             f"{k} object(s) tracked: reply -> first live output of a new one (s)"),
            (f"{key}.catch_up_s", "<= 1.033", "the same from the start of its seeding (s)"),
            (f"{key}.max_gap_ms", f"< {gap_ms}", "the tracked objects' largest gap while it is grounded "
             f"(ms; goal: 3 live steps of {k} object(s))")]


def _camera_rows(profile: str, name: str) -> list[tuple[str, str, str]]:
    """The bench 'cameras' rows of one simulated profile: two 30 Hz cameras on one model."""
    key = f"cameras.{profile}"
    return [(f"{key}.rate_hz_head", "-", f"simulated {name}, two 30 Hz cameras on one model, one query for both: "
             "head camera's output rate once both tracked (Hz)"),
            (f"{key}.rate_hz_wrist", "-", "the same, the wrist camera (Hz)"),
            (f"{key}.rate_fairness", ">= 0.8", "lowest camera rate / highest"),
            (f"{key}.single_camera_rate_hz", "-", "the head camera alone on the model, same query and span (Hz)"),
            (f"{key}.stalled_other_rate_ratio", ">= 0.97", "head camera's rate while the wrist camera sends nothing / "
             "its rate alone")]


# key, goal (text), what it is
TABLE = [
    ("streaming.time_ratio_late_early", "<= 1.10", "tracker: median ms/frame of frames 1900-2000 over 100-200"),
    ("streaming.cpu_time_ratio_late_early", "<= 1.10", "the same in this process's CPU time (robust to other load)"),
    ("streaming.offline_time_ratio_late_early", "-", "the same for sam2's offline predictor"),
    ("streaming.rss_growth_mb", "<= 32", "tracker: RSS after frame 2000 minus after frame 200 (MB)"),
    ("streaming.offline_rss_growth_mb", "-", "the same for sam2's offline predictor (MB)"),
    ("streaming.ms_per_frame", "-", "tracker ms/frame (tiny SAM2, 64x48 frames)"),
    ("tracker.cost_ratio_tiny_vs_large", "<= 0.35", "tracker ms/frame, one object: SAM 2.1 Hiera-T / Hiera-L "
     "(real size, 1024 input, cpu)"),
    ("tracker.cpu_cost_ratio_tiny_vs_large", "<= 0.35", "the same in this process's CPU time"),
    ("tracker.extra_object_ratio", "<= 2.0", "tracker ms/frame with 4 objects / with 1 (Hiera-L, cpu)"),
    ("tracker.cpu_extra_object_ratio", "<= 2.0", "the same in this process's CPU time"),
    ("tracker.t.ms_per_frame", "-", "tracker ms/frame, one object, Hiera-T (5 prompts + 6 recent memories)"),
    ("tracker.s.ms_per_frame", "-", "the same, Hiera-S"),
    ("tracker.b+.ms_per_frame", "-", "the same, Hiera-B+"),
    ("tracker.l.ms_per_frame", "-", "the same, Hiera-L (the checkpoint's size)"),
    ("tracker.l4.ms_per_frame", "-", "the same, Hiera-L with 4 objects"),
    ("tracker.t.cpu_ms_per_frame", "-", "Hiera-T, one object: CPU ms per frame"),
    ("tracker.t.encoder_cpu_ms", "-", "of which in the image encoder"),
    ("tracker.t.memory_attention_cpu_ms", "-", "of which in the memory attention (the same module in every size)"),
    ("tracker.l.cpu_ms_per_frame", "-", "Hiera-L, one object: CPU ms per frame"),
    ("tracker.l.encoder_cpu_ms", "-", "of which in the image encoder"),
    ("tracker.l.memory_attention_cpu_ms", "-", "of which in the memory attention"),
    ("tracker.l4.memory_attention_cpu_ms", "-", "Hiera-L, 4 objects: CPU ms in the (batched) memory attention"),
    ("tracker.ort_cost_ratio_t", "<= 0.8", "onnxruntime (CPU provider) ms/frame / torch ms/frame, same run, one "
     "object, Hiera-T real size"),
    ("tracker.ort_cpu_cost_ratio_t", "<= 0.8", "the same in this process's CPU time"),
    ("tracker.ort_cost_ratio_tiny", "-", "the same with the tiny Hiera-T config (128 input)"),
    ("tracker.ort_cpu_cost_ratio_tiny", "-", "the same in this process's CPU time"),
    ("tracker.torch_t.cpu_ms_per_frame", "-", "torch backend, Hiera-T real size: CPU ms per frame"),
    ("tracker.torch_t.encoder_cpu_ms", "-", "of which in the image encoder"),
    ("tracker.torch_t.memory_attention_cpu_ms", "-", "of which in the memory attention"),
    ("tracker.ort_t.cpu_ms_per_frame", "-", "onnxruntime backend, the same: CPU ms per frame"),
    ("tracker.ort_t.encoder_cpu_ms", "-", "of which in the image encoder graph"),
    ("tracker.ort_t.memory_attention_cpu_ms", "-", "of which in the memory attention graph"),
    ("onnx.export_seconds_t", "-", "sa2va-i-export of Hiera-T's five graphs (s)"),
    ("preprocess.pil_ms_640x480", "-", "tracker preprocessing, exact PIL path, 640x480 -> 1024 (ms)"),
    ("preprocess.device_ms_640x480", "-", "the device path (device_pixels), run here on the CPU (ms)"),
    ("preprocess.device_mask_iou_min", "-", "lowest per-frame mask IoU, device path vs PIL path (tiny tracker, "
     "40 frames)"),
    ("preprocess.device_mask_iou_mean", "-", "mean of the same"),
    ("preprocess.nonempty_frames", "-", "frames (of 40) whose mask is not empty with the PIL path"),
    ("grounding.memory_ratio_vs_reference", "<= 0.6", "peak memory of one grounding call, ours / official way"),
    ("grounding.time_ratio_vs_reference", "<= 1.0", "time of one grounding call, ours / official way"),
    ("grounding.ours_peak_mb", "-", "peak memory of one grounding call, ours (MB)"),
    ("grounding.reference_peak_mb", "-", "the same, official way (MB)"),
    ("grounding.ours_time_ms", "-", "one grounding call, ours (ms)"),
    ("grounding.reference_time_ms", "-", "the same, official way (ms)"),
    ("node.overhead_ms_p50", "<= 3", "node's own cost per frame on the worker's path, p50 (ms)"),
    ("node.overhead_ms_p95", "-", "node's own cost per frame on the worker's path, p95 (ms)"),
    ("node.overhead_with_overlay_ms_p50", "<= 0.5 x dds", "the same with an ~/overlay subscriber, p50 (ms)"),
    ("node.overhead_with_overlay_vs_dds", "<= 0.5", "the same / node.dds_transfer_ms_p50 of the same run"),
    ("node.publish_ms_p50", "-", "publisher thread: building + publishing a frame's messages, p50 (ms)"),
    ("node.publish_with_overlay_ms_p50", "-", "the same with the overlay drawn, p50 (ms)"),
    ("node.dds_transfer_ms_p50", "-", "640x480 rgb8 image between two processes, p50 (ms)"),
    ("node.dds_transfer_ms_p95", "-", "the same, p95 (ms)"),
    ("load.peak_rss_ratio", "<= 1.3", "loading Sa2VA-i-1B-size bf16 shards: peak host memory / size on disk"),
    ("load.reference_peak_rss_ratio", "-", "the same, the way before (random fp32 build, copy, cast)"),
    ("load.seconds", "-", "the same load, ours (s)"),
    ("load.seconds_ratio_vs_transformers", "<= 1.0", "whole load (config, network, tokenizer) into float32 on the "
     "CPU: project / transformers from_pretrained of the native models, same tensors (medians)"),
    ("load.peak_rss_ratio_vs_transformers", "-", "the same: peak RSS, project / transformers"),
    ("load.seconds_project", "-", "the same load, project (s, median)"),
    ("load.seconds_transformers", "-", "the same load, transformers (s, median)"),
    ("load.seconds_ratio_vs_transformers_bf16", "-", "the same comparison into bfloat16"),
    ("load.peak_rss_ratio_vs_transformers_bf16", "-", "the same: peak RSS, project / transformers, bfloat16"),
    ("load.configure_seconds", "-", "the node's first configure in a fresh process, 1B layout, CPU float32 (s)"),
    ("load.reconfigure_seconds", "-", "lifecycle cleanup + configure of the same node and checkpoint (s, median)"),
    ("load.reconfigure_ratio", "<= 0.5", "reconfigure / cold configure"),
    ("load.rss_after_cleanup_mb", "-", "process RSS once a cleanup returned (the weights' memory back?)"),
    ("load.reference_seconds", "-", "the same load, the way before (s)"),
    ("load8b.peak_rss_ratio", "<= 1.3", "Sa2VA-8B-size bf16 shards (LM cut to 4 of 32 layers): peak memory / disk"),
    ("load8b.seconds", "-", "the same load (s)"),
    ("buffer.push_us_640x480", "-", "ring buffer: decode + copy-in + push, 640x480 rgb8 (us)"),
    ("buffer.push_us_1280x720", "-", "the same at 1280x720 (us)"),
    ("buffer.compressed_push_us_640x480", "-", "CompressedImage input: JPEG decode + push, 640x480 (us)"),
    ("buffer.compressed_push_us_1280x720", "-", "the same at 1280x720 (us)"),
    ("codec.jpeg_simplejpeg_us_640x480", "-", "JPEG decode, simplejpeg (the one used), 640x480 (us)"),
    ("codec.jpeg_pillow_us_640x480", "-", "the same JPEGs decoded by Pillow (the alternative), 640x480 (us)"),
    ("codec.compressed_depth_us_640x480", "-", "compressedDepth 16UC1 PNG decode, 640x480 (us)"),
    ("runtime.desktop_gpu.join_live_s", "<= 1.033", "simulated desktop GPU, 30 Hz: reply -> first live output of a "
     "new object, one object already tracked (s)"),
    ("runtime.desktop_gpu.catch_up_s", "<= 1.033", "the same from the end of its grounding (s)"),
    ("runtime.desktop_gpu.max_gap_ms", "< 90", "the tracked object's largest output gap while the new query is "
     "grounded (ms; goal: 3 tracker frames)"),
    ("runtime.desktop_gpu.max_gap_catch_up_ms", "-", "the same during the new object's catch-up and join (ms)"),
    ("runtime.desktop_gpu.grounding_s", "-", "the grounding's span with live tracking interleaved (s)"),
    ("runtime.jetson.join_live_s", "<= 1.033", "simulated Jetson Orin, 30 Hz: reply -> first live output (s)"),
    ("runtime.jetson.catch_up_s", "<= 1.033", "the same from the end of its grounding (s)"),
    ("runtime.jetson.max_gap_ms", "< 360", "the tracked object's largest gap while the new query is grounded (ms)"),
    ("runtime.jetson.max_gap_catch_up_ms", "-", "the same during the catch-up and join (ms)"),
    ("runtime.jetson.grounding_s", "-", "the grounding's span with live tracking interleaved (s)"),
    ("runtime.cpu_tiny.join_live_s", "-", "measured here, tiny model, 15 Hz camera thread: reply -> first live (s)"),
    ("runtime.cpu_tiny.catch_up_s", "-", "the same from the end of its grounding (s; budget 1 s)"),
    ("runtime.cpu_tiny.max_gap_ms", "-", "the tracked object's largest gap while the query is grounded (ms)"),
    ("runtime.cpu_tiny.output_period_ms", "-", "its output period before the query (ms; the camera's when faster)"),
    ("runtime.cpu_tiny.live_step_ms", "-", "median live step (one tracker frame) measured here (ms)"),
    ("runtime.cpu_tiny.longest_background_step_ms", "-", "longest grounding or catch-up step measured here (ms)"),
    ("runtime.fault_recovery_ms", "<= 66.7", "simulated desktop GPU, 30 Hz: injected CUDA out-of-memory error (in a "
     "grounding, seeding, catch-up, another object's live step, the shared live step) -> next live output of the "
     "tracked object, worst phase (ms; goal: 2 output periods)"),
    ("runtime.jetson.fault_recovery_ms", "<= 240", "the same, simulated Jetson Orin (ms)"),
    ("runtime.held_mb_60s_grounding", "<= 512", "peak MB of frames held for the catch-up during a 60 s grounding, "
     "30 Hz 640x480 camera, the node's default buffer (300 frames, 30 s, 512 MB), simulated clock"),
    ("runtime.held_mb_60s_grounding_unbounded", "-", "what the frames that arrived meanwhile weigh (held before "
     "the cap, MB)"),
    ("runtime.first_query_ms_cold", "-", "first query's latency in a fresh process, tiny checkpoint, 8 frames of "
     "480x640, measured here (ms)"),
    ("runtime.first_query_ms_warm", "-", "the same after warm_up (ms)"),
    *(row for profile, name, gaps in (("desktop_gpu", "desktop GPU", (96, 126, 186)),
                                      ("jetson", "Jetson", (384, 504, 744)))
      for k, gap in zip((1, 2, 4), gaps, strict=True) for row in _join_rows(profile, name, k, gap)),
    ("runtime.real_t.longest_step_ms", "-", "real worker, this CPU: tiny Sa2VA + Hiera-T real size, a query with "
     "num_frames prompted frames then a live step: longest step (ms)"),
    ("runtime.real_t.longest_seeding_step_ms", "-", "the same: longest seeding step (ms)"),
    ("runtime.real_t.encoder_pass_ms", "-", "the same run: one Hiera-T image encoder pass (ms)"),
    ("runtime.real_t.seeding_step_ratio", "<= 1.2", "longest seeding step / one encoder pass (wall time)"),
    ("runtime.real_t.seeding_step_cpu_ratio", "<= 1.2", "the same in CPU time (one torch thread; robust to load)"),
    ("runtime.real_t.longest_background_step_ms", "-", "longest grounding, seeding or catch-up step (ms)"),
    ("runtime.real_t.live_step_ms", "-", "a live step: encoder and memory attention (ms)"),
    *(row for profile, name in (("desktop_gpu", "desktop GPU"), ("jetson", "Jetson"))
      for row in _camera_rows(profile, name)),
    ("cameras.memory_mb_one", "-", "one process, the model and one camera: peak RSS minus RSS after imports (MB; "
     "random-weight Sa2VA-i-1B size, float32, CPU; 60 buffered 480x640 frames, one object seeded on one, 2 live "
     "steps)"),
    ("cameras.memory_mb_two", "-", "the same process with two cameras on the one model (build_sessions: one engine, "
     "one SAM2; each camera its buffer and tracker state) (MB)"),
    ("cameras.memory_ratio_two_vs_one", "<= 1.15", "two cameras / one camera, one process each (peak RSS, weights "
     "included)"),
    ("cameras.memory_ratio_two_nodes", "-", "two one-camera nodes / one two-camera node: computed as 2 x the "
     "one-camera process, not measured running side by side"),
]


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem / 2**20, 1), "gpu": gpu,
            "os": platform.platform(), "python": platform.python_version(), "torch": torch.__version__}


def gpu_figures(out: dict) -> None:
    """Real-size random-weight models on a GPU machine (skipped, and said so, on CPU-only machines)."""
    import torch

    if not torch.cuda.is_available():
        out["gpu.note"] = "no CUDA device on this machine: GPU figures not measured"
        return
    proc = subprocess.run([sys.executable, "-m", "bench.bench_gpu"], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode == 0:
        out.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    else:
        out["gpu.note"] = f"bench_gpu failed: {proc.stderr[-500:]}"


def write_doc(results: dict) -> None:
    m = results["machine"]
    lines = [f"Last run {results['date']} on: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB RAM, GPU: "
             f"{m['gpu']}; {m['os']}; Python {m['python']}, torch {m['torch']}.", ""]
    parts = results.get("parts", {})
    if parts:
        undated = [p for p in PARTS if p not in parts and any(k.startswith(p + ".") for k in results)]
        lines += ["Parts measured: " + "; ".join(f"{k} {v}" for k, v in parts.items())
                  + (f"; {', '.join(undated)}: not recorded (see the git history of bench/results/latest.json)"
                     if undated else "") + ".", ""]
    lines += ["| figure | value | goal | what |", "| --- | --- | --- | --- |"]
    for key, goal, what in TABLE:
        value = results.get(key, "not measured")
        value = f"{value:.3g}" if isinstance(value, float) else value
        lines.append(f"| `{key}` | {value} | {goal} | {what} |")
    if "gpu.note" in results:
        lines += ["", f"GPU: {results['gpu.note']}."]
    text = DOC.read_text() if DOC.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    DOC.write_text(pattern.sub(BEGIN + "\n" + "\n".join(lines) + "\n" + END, text))


def main(argv=None) -> int:
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("--quick", action="store_true", help="400 streaming frames (a smoke run)")
    args.add_argument("--only", nargs="+", choices=PARTS,
                      help="re-measure only these parts, keeping the others from latest.json")
    opts = args.parse_args(argv)
    from bench import (
        bench_buffer,
        bench_cameras,
        bench_faults,
        bench_grounding,
        bench_load,
        bench_node,
        bench_onnx,
        bench_preprocess,
        bench_runtime,
        bench_steps,
        bench_streaming,
        bench_tracker,
    )

    results: dict = json.loads(RESULTS.read_text()) if opts.only and RESULTS.exists() else {}
    parts = results.setdefault("parts", {})  # when and where each part was measured (--only keeps old ones)
    results.update({"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine()})
    for name, step in (("streaming", lambda o: bench_streaming.run(400 if opts.quick else 2000, o)),
                       ("buffer", bench_buffer.run), ("node", bench_node.run),
                       ("grounding", bench_grounding.run), ("load", bench_load.run), ("load8b", bench_load.run_8b),
                       ("runtime", bench_runtime.run), ("faults", bench_faults.run), ("steps", bench_steps.run),
                       ("cameras", bench_cameras.run),
                       ("tracker", lambda o: bench_tracker.run(o, rounds=1 if opts.quick else 2)),
                       ("onnx", lambda o: bench_onnx.run(o, rounds=1 if opts.quick else 2)),
                       ("preprocess", bench_preprocess.run),
                       ("gpu", gpu_figures)):
        if opts.only and name not in opts.only:
            continue
        t0 = time.perf_counter()
        print(f"[bench] {name} ...", flush=True)
        step(results)
        parts[name] = (f"{results['date']} on {results['machine']['cpu']} "
                       f"(load average {os.getloadavg()[0]:.1f} at the end)")
        print(f"[bench] {name} done in {time.perf_counter() - t0:.0f} s", flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    write_doc(results)
    print(f"[bench] wrote {RESULTS.relative_to(ROOT)} and {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
