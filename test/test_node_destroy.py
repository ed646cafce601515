"""A destroyed segment node is gone: out of the ROS graph, its DDS participant closed, its threads ended.

CI failed on every cross-process test late in the suite (the bag player's
messages never reached the pytest process, lifecycle services never appeared):
each NodeHarness had left a participant open in the pytest process, because
rclpy's LifecycleNode keeps its state machine (which holds the node's handle)
past ``destroy_node``, and past about 30 such participants a new process's
nodes no longer heard the pytest process's.
"""

from __future__ import annotations

import contextlib
import os
import time

import pytest
import rclpy
from rclpy.parameter import Parameter

from sa2va_i_ros.ros.segment_node import SegmentNode

pytestmark = pytest.mark.ros


def open_sockets() -> int:
    """Sockets this process holds (a Fast DDS participant holds several of its own)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the fd of listdir itself, closed meanwhile
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def make_node(model_dir, active: bool):
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = SegmentNode("destroyed_node", context=ctx,
                       parameter_overrides=[Parameter("model", value=str(model_dir))])
    if active:
        assert node.trigger_configure().name == "SUCCESS"
        assert node.trigger_activate().name == "SUCCESS"
    return ctx, node


@pytest.mark.parametrize("active", [False, True], ids=["unconfigured", "active"])
def test_a_destroyed_node_leaves_the_graph(tiny_checkpoint, rclpy_context, active):
    observer = rclpy.create_node("observer", context=rclpy_context)
    ctx, node = make_node(tiny_checkpoint, active)
    try:
        def in_graph() -> bool:
            return "destroyed_node" in observer.get_node_names()

        end = time.monotonic() + 20
        while not in_graph() and time.monotonic() < end:
            time.sleep(0.05)
        assert in_graph(), "the node never appeared in the graph (environment problem, not this test's subject)"
        queue_thread = node.frame_publisher.queue._thread
        node.destroy_node()
        assert not queue_thread.join(2.0) and not queue_thread.is_alive()
        end = time.monotonic() + 20
        while in_graph() and time.monotonic() < end:
            time.sleep(0.05)
        assert not in_graph(), "the destroyed node (the node object still referenced) is still in the graph"
    finally:
        ctx.try_shutdown()
        observer.destroy_node()


def test_nodes_made_one_after_another_leave_no_participant_behind(tiny_checkpoint):
    ctx, node = make_node(tiny_checkpoint, active=True)  # the first one opens the process-wide transports
    node.destroy_node()
    ctx.try_shutdown()
    baseline = open_sockets()
    kept = []  # the node objects stay referenced, as a test's harness or a traceback keeps them
    for _ in range(3):
        ctx, node = make_node(tiny_checkpoint, active=True)
        kept.append(node)
        node.destroy_node()
        ctx.try_shutdown()
    assert open_sockets() == baseline
