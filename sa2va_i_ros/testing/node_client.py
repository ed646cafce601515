"""Driving a segment node from another process: waits, service calls and the lifecycle.

Shared by the replay observer (tests, launch test, ``make demo``) and the node
benchmark, so that every client waits the same way and none waits forever.
"""

from __future__ import annotations

import time


def spin_until(executor, predicate, timeout: float) -> bool:
    """Spin ``executor`` until ``predicate()`` holds or ``timeout`` seconds pass; returns ``predicate()``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        executor.spin_once(timeout_sec=0.02)
    return predicate()


def call(executor, client, request, what: str, timeout: float = 120.0):
    """The response of one service call; RuntimeError naming ``what`` if the service or its reply is late."""
    if not spin_until(executor, client.service_is_ready, min(timeout, 60.0)):
        raise RuntimeError(f"the service for {what} did not appear")
    future = client.call_async(request)
    if not spin_until(executor, future.done, timeout):
        raise RuntimeError(f"no reply to {what}")
    return future.result()


def configure_and_activate(node, executor, node_name: str, timeout: float = 120.0) -> None:
    """configure + activate through the node's lifecycle services (what the launch file does itself)."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    client = node.create_client(ChangeState, f"/{node_name.lstrip('/')}/change_state")
    for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
        reply = call(executor, client, ChangeState.Request(transition=Transition(id=transition)),
                     f"lifecycle transition {transition}", timeout)
        if not reply.success:
            raise RuntimeError(f"lifecycle transition {transition} failed")
