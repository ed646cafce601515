"""Replay a bag into a segment node process, ask a query mid-stream, collect and check what it publishes.

Shared by the bag integration tests, the launch_testing test (test/launch/) and
``make demo``. Three processes, as on a robot: the node (``segment_node`` with
the launch file's parameters file and remaps), the player (``sa2va-i-play``)
and this one, the ``Observer``, which subscribes to the camera and to every
output and calls ``~/segment`` once ``query_after`` camera frames have been
seen. Every process runs under the network rule (``testing/ros_env.py``).

    options   ReplayOptions (what to replay and ask), QUERY
    result    ReplayResult (what the observer saw)
    observer  Observer (subscriptions, the query, waiting for the node to settle)
    run       run_replay, node_command, player_command (the processes)
    checks    check_replay, check_markers, node_settled, settled_report (pure functions over a result)
    bags      bag_frames, bag_depths (the bag's own frames, the reference)
"""

from sa2va_i_ros.testing.replay.bags import bag_depths, bag_frames
from sa2va_i_ros.testing.replay.checks import check_markers, check_replay, node_settled, settled_report
from sa2va_i_ros.testing.replay.observer import Observer
from sa2va_i_ros.testing.replay.options import QUERY, ReplayOptions, observed_camera_topic
from sa2va_i_ros.testing.replay.result import ReplayResult
from sa2va_i_ros.testing.replay.run import node_command, player_command, run_replay

__all__ = [
    "QUERY",
    "Observer",
    "ReplayOptions",
    "ReplayResult",
    "bag_depths",
    "bag_frames",
    "check_markers",
    "check_replay",
    "node_command",
    "node_settled",
    "observed_camera_topic",
    "player_command",
    "run_replay",
    "settled_report",
]
