"""The node's configure time on the bench's Sa2VA-i-1B-size checkpoint: cold, and after a lifecycle cleanup.

In one fresh process (network rule applied; ``ROS_DOMAIN_ID`` from the
environment when set, else a claimed one): a ``SegmentNode`` with the
production parameters and ``model`` = the checkpoint (CPU, float32, as
``device``/``dtype`` auto pick here) is configured (cold: the heavy imports,
torch excluded, happen inside, as at boot), then cleaned up and configured
again ``RECONFIGURES`` times. Reported: the cold configure, the median
cleanup + configure, their ratio, and the process RSS after a cleanup (the
weights' memory is given back).

    python -m bench.load_node
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECONFIGURES = 3


def _settled_rss(rss, seconds: float = 3.0) -> float:
    """RSS once the cleaned-up network is gone (the worker thread may drop it a moment after the cleanup)."""
    end, low = time.monotonic() + seconds, rss("VmRSS")
    while time.monotonic() < end:
        time.sleep(0.1)
        low = min(low, rss("VmRSS"))
    return low


def measure(directory: Path) -> dict:
    import torch  # noqa: F401  (imported before any clock: a process imports it at start)

    from bench.bench_streaming import proc_status_mb
    from sa2va_i_ros.testing.ros_env import apply_local_ros_env

    domain = os.environ.get("ROS_DOMAIN_ID")
    apply_local_ros_env(int(domain) if domain else None)
    import rclpy
    from rclpy.parameter import Parameter

    from sa2va_i_ros.ros.segment_node import SegmentNode

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = SegmentNode("bench_load", context=ctx, parameter_overrides=[Parameter("model", value=str(directory))])
    try:
        t0 = time.perf_counter()
        if node.trigger_configure().name != "SUCCESS":
            raise RuntimeError(f"configure failed: {node._model_state}")
        cold = time.perf_counter() - t0
        again, rss_clean = [], []
        for _ in range(RECONFIGURES):
            t0 = time.perf_counter()
            node.trigger_cleanup()
            cleanup = time.perf_counter() - t0
            rss_clean.append(_settled_rss(proc_status_mb))  # not timed: only to see the memory go back
            t0 = time.perf_counter()
            if node.trigger_configure().name != "SUCCESS":
                raise RuntimeError(f"configure failed: {node._model_state}")
            again.append(cleanup + time.perf_counter() - t0)
        node.trigger_cleanup()
        return {"configure_seconds": cold, "reconfigure_seconds": statistics.median(again),
                "reconfigure_runs": again, "rss_after_cleanup_mb": max(rss_clean), "rss_after_cleanups": rss_clean}
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)


def run(directory: Path, out: dict) -> dict:
    """``load.configure_seconds``, ``load.reconfigure_seconds`` and their ratio, from a child process."""
    proc = subprocess.run([sys.executable, "-m", "bench.load_node", str(directory)], cwd=ROOT, capture_output=True,
                          text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"load_node failed:\n{proc.stderr[-2000:]}")
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    out["load.configure_seconds"] = round(got["configure_seconds"], 2)
    out["load.reconfigure_seconds"] = round(got["reconfigure_seconds"], 2)
    out["load.reconfigure_ratio"] = round(got["reconfigure_seconds"] / got["configure_seconds"], 3)
    out["load.rss_after_cleanup_mb"] = round(got["rss_after_cleanup_mb"])
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1:
        print(json.dumps(measure(Path(sys.argv[1]))))
    else:
        from bench.bench_load import ensure_model

        print(json.dumps(run(ensure_model("1b"), {}), indent=2))
