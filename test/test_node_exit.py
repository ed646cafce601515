"""SIGINT (Ctrl-C, or launch stopping the node) ends the node process at once with exit code 0 (issue 22).

The node is started as launch starts it (the ``segment_node`` executable, autostart on) and interrupted at
random moments: idle, while a grounding request is served, while it tracks, and in the half second main
waits after the shutdown transition (its reply goes out). Launch escalates to SIGTERM after
5 s; the goal is under 2 s with exit code 0 in every try (the old node took 4.5-6 s: Python's interpreter
teardown with torch loaded, after an exit that had already cleaned up, and once in 12 stops failed spinning on
a context SIGINT had shut down). The exit times are recorded as junit testsuite properties.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from node_harness import image_msg
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from sa2va_i_ros.msg import TrackedObjectArray
from sa2va_i_ros.srv import Segment
from sa2va_i_ros.testing.node_client import call, spin_until
from sa2va_i_ros.testing.ros_env import local_ros_env

pytestmark = pytest.mark.ros
EXECUTABLE = Path(__file__).resolve().parents[1] / "scripts" / "segment_node"
TRIES = 20
EXIT_GOAL_S = 2.0
# "shut down": the shutdown transition, then SIGINT while main lets its reply go out (main must not spin again
# on the context SIGINT shut down: "RCLError: failed to create timer ... context is not valid", exit 1, c81860c)
MOMENTS = ("idle", "grounding", "tracking", "shut down")


class NodeProcess:
    def __init__(self, checkpoint, name: str):
        self.proc = subprocess.Popen(
            [sys.executable, str(EXECUTABLE), "--ros-args", "-r", f"__node:={name}", "-r", f"image:=/{name}/image",
             "-p", f"model:={checkpoint}", "-p", "autostart:=true"],
            env=local_ros_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self._reader.start()

    def interrupt(self) -> tuple[int, float]:
        """SIGINT, then the exit code and the seconds until the process ended (killed after 30 s: code None)."""
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = None
        took = time.monotonic() - t0
        self._reader.join(5)
        return code, took


def test_sigint_ends_the_node_process_at_once_with_exit_code_0(tiny_checkpoint, rclpy_context,
                                                               record_testsuite_property):
    rng = random.Random(22)
    client = rclpy.create_node("sigint_client", context=rclpy_context)
    executor = rclpy.executors.SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(client)
    results = []
    try:
        for k in range(TRIES):
            moment, name = MOMENTS[k % len(MOMENTS)], f"sigint_{k}"
            node = NodeProcess(tiny_checkpoint, name)
            got = []
            sub = client.create_subscription(TrackedObjectArray, f"/{name}/objects", got.append, 50)
            pub = client.create_publisher(Image, f"/{name}/image", qos_profile_sensor_data)
            state = client.create_client(GetState, f"/{name}/get_state")
            segment = client.create_client(Segment, f"/{name}/segment")
            change = client.create_client(ChangeState, f"/{name}/change_state")
            try:
                assert spin_until(executor, lambda state=state: call(executor, state, GetState.Request(), "get_state")
                                  .current_state.label == "active", 120), "".join(node.lines)
                hit = moment
                if moment == "shut down":
                    done = change.call_async(ChangeState.Request(
                        transition=Transition(id=Transition.TRANSITION_ACTIVE_SHUTDOWN)))
                    assert spin_until(executor, done.done, 60) and done.result().success
                    spin_until(executor, lambda: False, rng.uniform(0.0, 0.4))  # main waits 0.5 s, then exits
                    hit = "shut down" if node.proc.poll() is None else "shut down (exited already)"
                elif moment != "idle":
                    assert spin_until(executor, lambda pub=pub: pub.get_subscription_count() > 0, 60)
                    for i in range(8):
                        pub.publish(image_msg(i))
                        executor.spin_once(timeout_sec=0.03)
                    reply = segment.call_async(Segment.Request(query="the cup", track=moment == "tracking"))
                    if moment == "grounding":  # interrupted at a random moment while the request is served
                        spin_until(executor, lambda: False, rng.uniform(0.0, 0.3))
                        hit = "grounding" if not reply.done() else "grounding (answered already)"
                    else:
                        assert spin_until(executor, reply.done, 60) and reply.result().success
                        i, end = 8, time.monotonic() + rng.uniform(0.3, 1.5)
                        while time.monotonic() < end or not got:  # the camera goes on; outputs come
                            pub.publish(image_msg(i))
                            i += 1
                            spin_until(executor, lambda: False, 0.05)
                code, took = node.interrupt()
            finally:
                if node.proc.poll() is None:
                    node.proc.kill()
                for entity in (sub, pub):
                    (client.destroy_subscription if entity is sub else client.destroy_publisher)(entity)
                client.destroy_client(state)
                client.destroy_client(segment)
                client.destroy_client(change)
            results.append((hit, code, round(took, 3)))
            out = "".join(node.lines)
            assert code == 0 and took < EXIT_GOAL_S and "Traceback" not in out, (k, hit, code, took, out)
    finally:
        executor.shutdown()
        client.destroy_node()
        for key, value in (("sigint_exit_s_max", max((r[2] for r in results), default=float("nan"))),
                           ("sigint_tries", repr(results))):
            record_testsuite_property(key, value)
        print(f"SIGINT exits (moment, code, seconds): {results}")
