"""Wrappers that keep the segment node alive whatever its callbacks meet.

An exception escaping a callback would stop rclpy's executor and with it the
node, and the worker thread may still publish while the process shuts down.
Both wrappers expect ``self`` to have the node's ``context`` (``guarded`` also
its ``_counts`` and ``get_logger``), so they serve the node and the helpers
that publish for it alike.
"""

from __future__ import annotations

import functools
import inspect
import threading
import traceback


class Counts:
    """Named counters that several threads add to and /diagnostics reads (a copy, under a lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, key: str) -> int:
        with self._lock:
            self._counts[key] = n = self._counts.get(key, 0) + 1
            return n

    def get(self, key: str, default: int = 0) -> int:
        with self._lock:
            return self._counts.get(key, default)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def count_internal_error(node, what: str, exc: Exception) -> None:
    """Count a bug met by a callback in /diagnostics (``internal errors``) and log it with its traceback."""
    node._counts.add("internal errors")
    node.get_logger().error(f"{what} failed: {exc!r}\n{traceback.format_exc()}")


def guarded(callback):
    """Keep the node alive whatever a callback raises: log it, count it, answer what can be answered.

    Bad input is handled inside the callbacks; this is the last line for bugs.
    Works for plain and coroutine callbacks.
    """
    def fail(self, args, exc):
        if not self.context.ok():
            return None  # shutting down (SIGINT): publishers are already gone
        count_internal_error(self, callback.__name__, exc)
        if len(args) == 2 and hasattr(args[1], "success"):  # a service: answer with the error
            args[1].success, args[1].message = False, f"internal error: {exc!r}"
            return args[1]
        return None

    if inspect.iscoroutinefunction(callback):
        @functools.wraps(callback)
        async def async_wrapper(self, *args):
            try:
                return await callback(self, *args)
            except Exception as exc:  # the node must survive anything a callback meets
                return fail(self, args, exc)
        return async_wrapper

    @functools.wraps(callback)
    def wrapper(self, *args):
        try:
            return callback(self, *args)
        except Exception as exc:  # the node must survive anything a callback meets
            return fail(self, args, exc)
    return wrapper


def while_up(method):
    """Publishing from the worker thread while the process shuts down (SIGINT) is dropped quietly."""
    @functools.wraps(method)
    def wrapper(self, *args):
        try:
            return method(self, *args)
        except Exception:
            if not self.context.ok():
                return None
            raise
    return wrapper
