"""ROS smoke test across processes: the real `segment_node` executable, driven from this process.

A node process is started, its lifecycle and `~/segment` services are called and
its messages received across processes, with the network rule (LOCALHOST
discovery, this run's own ROS_DOMAIN_ID, the project's Fast DDS profile) and the
node's default sensor-data QoS on the image.
"""

import signal
import subprocess
import sys
import time

import pytest
import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from node_harness import image_msg, stamp_ns
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from sa2va_i_ros.msg import TrackedObjectArray
from sa2va_i_ros.ros.conversions import stamp_to_ns
from sa2va_i_ros.srv import Segment
from sa2va_i_ros.testing.ros_env import local_ros_env
from sa2va_i_ros.testing.tiny_sa2va import DEFAULT_ANSWER  # what the tiny checkpoint was built to say

pytestmark = pytest.mark.ros
NODE = "/smoke_node"


def spin_until(executor, predicate, what, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        executor.spin_once(timeout_sec=0.05)
    raise AssertionError(f"timed out waiting for {what}")


def call(executor, client, request, what):
    spin_until(executor, client.service_is_ready, f"{what} to be available")
    future = client.call_async(request)
    spin_until(executor, future.done, what)
    return future.result()


def test_node_process_service_and_messages_across_processes(tiny_checkpoint, rclpy_context):
    env = local_ros_env()
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST" and env["FASTDDS_DEFAULT_PROFILES_FILE"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sa2va_i_ros.ros.node_process", "--ros-args", "-r", "__node:=smoke_node",
         "-r", "image:=/smoke/image", "-p", f"model:={tiny_checkpoint}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    node = rclpy.create_node("smoke_client", context=rclpy_context)
    executor = rclpy.executors.SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    try:
        got = []
        node.create_subscription(TrackedObjectArray, f"{NODE}/objects", got.append, 20)
        pub = node.create_publisher(Image, "/smoke/image", qos_profile_sensor_data)
        change = node.create_client(ChangeState, f"{NODE}/change_state")
        state = node.create_client(GetState, f"{NODE}/get_state")
        for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
            reply = call(executor, change, ChangeState.Request(transition=Transition(id=transition)),
                         f"lifecycle transition {transition}")
            assert reply.success
        assert call(executor, state, GetState.Request(), "get_state").current_state.label == "active"

        spin_until(executor, lambda: pub.get_subscription_count() > 0, "the node to subscribe")
        for i in range(8):
            pub.publish(image_msg(i))
            executor.spin_once(timeout_sec=0.05)
        segment = node.create_client(Segment, f"{NODE}/segment")
        reply = call(executor, segment, Segment.Request(query="the cup left of the bowl"), "segment")
        assert reply.success, reply.message
        assert reply.track_id >= 1 and reply.window_frames >= 1 and reply.answer == DEFAULT_ANSWER

        sent = []
        end = time.monotonic() + 60
        while len(got) < 3 and time.monotonic() < end:  # best effort may drop a frame: keep the camera going
            sent.append(20 + len(sent))
            pub.publish(image_msg(sent[-1]))
            t = time.monotonic()
            while time.monotonic() - t < 0.1:
                executor.spin_once(timeout_sec=0.02)
        assert len(got) >= 3, f"{len(got)} objects messages for {len(sent)} frames sent"
        stamps = [stamp_to_ns(m.header.stamp) for m in got]
        # best effort may drop, never invent; a frame sent before the query that reached the node after its
        # window was taken (newer than every sampled frame) is tracked in the catch-up, so it may have outputs
        newest_sampled = max(stamp_to_ns(s) for s in reply.sampled_stamps)
        late = {stamp_ns(i) for i in range(8) if stamp_ns(i) > newest_sampled}
        assert set(stamps) <= {stamp_ns(i) for i in sent} | late
        assert all(m.objects and m.objects[0].track_id == reply.track_id for m in got)
    finally:
        executor.shutdown()
        node.destroy_node()
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode == 0, out
    assert "Traceback" not in out, out
