"""The segment node's process: spin until SIGINT or the shutdown transition, answer what is under way, end.

The ``segment_node`` entry point and ``python -m sa2va_i_ros.ros.node_process`` run ``main``.
"""

from __future__ import annotations

import time

import rclpy
from rclpy._rclpy_pybind11 import RCLError
from rclpy.executors import ExternalShutdownException

from sa2va_i_ros.ros.process_exit import exit_now
from sa2va_i_ros.ros.segment_node import SegmentNode, make_executor

# SIGINT: how long a worker step under way may still run before the process ends anyway (launch escalates
# to SIGTERM after 5 s; the step's work is lost either way, the process memory goes with it)
EXIT_STEP_WAIT_S = 1.0


def main(args=None) -> int:
    """The process: spin until SIGINT or the shutdown transition, then end at once (``exit_now``)."""
    exit_now(run(args))


def run(args=None) -> int:
    rclpy.init(args=args)
    node = SegmentNode()
    executor = make_executor()
    executor.add_node(node)
    try:
        executor.spin_until_future_complete(node.exit_requested)
        end = time.monotonic() + 0.5  # let the shutdown transition's reply go out
        while time.monotonic() < end and node.context.ok():  # SIGINT shuts the context down: no more spinning
            executor.spin_once(timeout_sec=0.05)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RCLError:
        if node.context.ok():  # only a shut-down context (SIGINT between the check and the spin) is expected
            raise
    finally:
        workers = node.workers
        if workers is not None:  # every request under way is answered; a step under way gets EXIT_STEP_WAIT_S
            workers.close("the node process is exiting", timeout=EXIT_STEP_WAIT_S)
        for io in node.cameras.values():
            io.frame_publisher.queue.drain(EXIT_STEP_WAIT_S)  # its STOPPED events go out before the node goes
            io.frame_publisher.queue.close()
        executor.shutdown(timeout_sec=0, wait_for_threads=False)  # a callback still running (a configure
        node.destroy_node()                                        # loading the model) ends with the process
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    main()
