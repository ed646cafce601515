"""The segment node's own cost per frame at 640x480, across processes, and Fast DDS's transfer alone.

* ``node.overhead_ms_p50/p95``: in the node process, per published frame, what
  the node adds on the perception worker's path: its image callback (decode,
  buffer copy, hand-over to the worker) and handing its output to the
  publisher thread; one track, no depth, nobody on ~/overlay (the node renders
  it only for subscribers);
* ``node.overhead_with_overlay_ms_p50/p95``: the same with an ~/overlay
  subscriber (goal: <= 0.5 x ``node.dds_transfer_ms_p50`` of the same run);
* ``node.publish_ms_p50`` / ``node.publish_with_overlay_ms_p50``: the publisher
  thread's cost per frame (building and publishing objects, mask, markers and
  the overlay), off the worker's path but counted;
* ``node.dds_transfer_ms_p50/p95``: a 640x480 rgb8 image from this process to
  a subscriber process (publish to receive), with the project's Fast DDS profile.

Every process runs under the network rule (testing/ros_env.py).

    python -m bench.bench_node
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from sa2va_i_ros.testing.node_client import call, configure_and_activate, spin_until
from sa2va_i_ros.testing.ros_env import apply_local_ros_env, local_ros_env

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache" / "tiny_checkpoint"
SIZE = (480, 640)
NODE = "/bench_node"


def _image(i: int):
    from sensor_msgs.msg import Image

    from sa2va_i_ros.ros.conversions import ns_to_stamp, uint8_payload

    rgb = np.full((*SIZE, 3), 40, np.uint8)
    rgb[100:300, 50 + 4 * (i % 50):250 + 4 * (i % 50)] = (220, 40, 40)
    msg = Image(height=SIZE[0], width=SIZE[1], encoding="rgb8", step=SIZE[1] * 3, data=uint8_payload(rgb))
    msg.header.stamp = ns_to_stamp(time.time_ns())
    msg.header.frame_id = f"{time.time_ns()}"
    return msg


def _spin_for(executor, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.01)


def node_overhead(frames: int = 200, rate_hz: float = 10.0, with_overlay: bool = False) -> dict:
    """Run the node process and read its reported overhead; ``with_overlay`` subscribes to ~/overlay too."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from sa2va_i_ros.msg import TrackedObjectArray
    from sa2va_i_ros.srv import Segment
    from sa2va_i_ros.testing.tiny_sa2va import write_tiny_checkpoint

    if not (CACHE / "config.json").is_file():
        write_tiny_checkpoint(CACHE)
    proc = subprocess.Popen([sys.executable, "-m", "sa2va_i_ros.ros.node_process", "--ros-args",
                             "-r", "__node:=bench_node", "-r", "image:=/bench/image", "-p", f"model:={CACHE}",
                             "-p", "diagnostics_period:=0.5"],
                            env=local_ros_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("bench_client", context=ctx)
    ex = rclpy.executors.SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    diag, objects = [], []
    node.create_subscription(DiagnosticArray, "/diagnostics", diag.append, 10)
    node.create_subscription(TrackedObjectArray, f"{NODE}/objects", objects.append, 50)
    if with_overlay:
        node.create_subscription(Image, f"{NODE}/overlay", lambda m: None, 5)
    pub = node.create_publisher(Image, "/bench/image", qos_profile_sensor_data)
    try:
        configure_and_activate(node, ex, NODE)
        if not spin_until(ex, lambda: pub.get_subscription_count() > 0, 60):
            raise RuntimeError("the node did not subscribe to the image topic")
        for i in range(10):
            pub.publish(_image(i))
            _spin_for(ex, 1 / rate_hz)
        reply = call(ex, node.create_client(Segment, f"{NODE}/segment"),
                     Segment.Request(query="the cup left of the bowl"), "the segment request")
        assert reply.success, reply.message
        for i in range(frames):
            pub.publish(_image(10 + i))
            _spin_for(ex, 1 / rate_hz)
        _spin_for(ex, 1.0)
    finally:
        ex.shutdown()
        ctx.try_shutdown()
        proc.terminate()
        proc.wait(10)
    values = {}
    for arr in reversed(diag):
        for st in arr.status:
            if st.name.endswith(": output"):
                values = {kv.key: kv.value for kv in st.values}
                break
        if "overhead_ms_p50" in values:
            break
    key = "node.overhead_with_overlay_ms" if with_overlay else "node.overhead_ms"
    publish = "node.publish_with_overlay_ms" if with_overlay else "node.publish_ms"
    return {f"{key}_p50": float(values["overhead_ms_p50"]), f"{key}_p95": float(values["overhead_ms_p95"]),
            f"{key}_objects_received": f"{len(objects)}/{frames}",
            f"{publish}_p50": float(values["publish_ms_p50"]), f"{publish}_p95": float(values["publish_ms_p95"])}


SUBSCRIBER = textwrap.dedent("""
    import json, sys, time, rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    rclpy.init(); node = rclpy.create_node("bench_dds_sub"); lat = []
    node.create_subscription(Image, "/bench/dds", lambda m: lat.append((time.time_ns() - int(m.header.frame_id)) / 1e6),
                             qos_profile_sensor_data)
    end = time.time() + float(sys.argv[1])
    while time.time() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    print(json.dumps(lat)); rclpy.shutdown()
""")


def dds_transfer(frames: int = 200, rate_hz: float = 30.0) -> dict:
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    duration = 3.0 + frames / rate_hz
    sub = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, str(duration)], env=local_ros_env(),
                           stdout=subprocess.PIPE, text=True)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("bench_dds_pub", context=ctx)
    pub = node.create_publisher(Image, "/bench/dds", qos_profile_sensor_data)
    end = time.time() + 20
    while pub.get_subscription_count() == 0 and time.time() < end:
        time.sleep(0.05)
    time.sleep(0.5)
    for i in range(frames):
        pub.publish(_image(i))
        time.sleep(1 / rate_hz)
    ctx.try_shutdown()
    lat = json.loads(sub.communicate(timeout=60)[0].strip().splitlines()[-1])
    q = statistics.quantiles(lat, n=20) if len(lat) > 1 else [float("nan")] * 19
    return {"node.dds_transfer_ms_p50": round(statistics.median(lat), 3), "node.dds_transfer_ms_p95": round(q[18], 3),
            "node.dds_received": f"{len(lat)}/{frames}"}


def run(out: dict | None = None) -> dict:
    out = {} if out is None else out
    apply_local_ros_env()
    out["node.setup"] = "segment_node process, tiny checkpoint, one track, 640x480 rgb8 at 10 Hz, no depth"
    out.update(node_overhead())
    out.update(node_overhead(with_overlay=True))
    out.update(dds_transfer())
    out["node.overhead_with_overlay_vs_dds"] = round(out["node.overhead_with_overlay_ms_p50"]
                                                     / out["node.dds_transfer_ms_p50"], 3)
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
