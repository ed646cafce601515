"""One client process of a request burst: ``python -m sa2va_i_ros.testing.burst_client NODE N TIMEOUT``.

Waits for the node's ``~/segment`` service (default client QoS, as ``ros2
service call`` has), prints ``ready``, waits for a line on stdin (the go of the
test that started every client), sends N requests at once (``track`` false),
then spins until every one is answered or TIMEOUT seconds pass, and prints one
JSON line: answered, served, busy, other (answered otherwise), unanswered, and
the slowest answer's seconds from the go.
"""

from __future__ import annotations

import json
import sys
import time


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    node_name, n, timeout = argv[0].strip("/"), int(argv[1]), float(argv[2])
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from sa2va_i_ros.srv import Segment
    from sa2va_i_ros.testing.node_client import spin_until

    rclpy.init()
    node = rclpy.create_node(f"burst_client_{node_name}")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    client = node.create_client(Segment, f"/{node_name}/segment")
    try:
        if not spin_until(executor, client.service_is_ready, 60.0):
            print(json.dumps({"error": "the service did not appear"}), flush=True)
            return 1
        spin_until(executor, lambda: False, 1.0)  # the server's side of the match settles too
        print("ready", flush=True)
        sys.stdin.readline()
        t0 = time.monotonic()
        answered_at: dict[int, float] = {}
        futures = [client.call_async(Segment.Request(query=f"object {k}", track=False)) for k in range(n)]
        for k, f in enumerate(futures):
            f.add_done_callback(lambda _, k=k: answered_at.setdefault(k, time.monotonic() - t0))
        spin_until(executor, lambda: all(f.done() for f in futures), timeout)
        replies = [f.result() for f in futures if f.done()]
        served = sum(r.success for r in replies)
        busy = sum(not r.success and r.message.startswith("busy") for r in replies)
        print(json.dumps({"answered": len(replies), "served": served, "busy": busy,
                          "other": len(replies) - served - busy, "unanswered": n - len(replies),
                          "slowest_s": max(answered_at.values(), default=float("nan")),
                          "messages": sorted({r.message for r in replies if not r.success})[:5]}), flush=True)
        return 0
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
