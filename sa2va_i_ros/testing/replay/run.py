"""The replay's processes: the node as the launch file starts it, the player, and this one observing.

Every process runs under the network rule (``testing/ros_env.py``); the node and
the player get the same environment as the observer, so they find each other.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from sa2va_i_ros.testing.replay.observer import Observer
from sa2va_i_ros.testing.replay.options import ReplayOptions, observed_camera_topic
from sa2va_i_ros.testing.replay.result import ReplayResult
from sa2va_i_ros.testing.ros_env import local_ros_env
from sa2va_i_ros.testing.synthetic.bag_writer import COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC


def _params_file() -> Path:
    from sa2va_i_ros.testing.ros_env import fastdds_profile

    return fastdds_profile().parent / "segment.yaml"


def node_command(opts: ReplayOptions) -> list[str]:
    """The executable with the parameters file and remaps the launch file passes."""
    params = {"model": str(opts.model), "device": "cpu", "use_depth": opts.use_depth, **opts.params}
    cmd = [sys.executable, "-m", "sa2va_i_ros.ros.node_process", "--ros-args", "-r", f"__node:={opts.node_name}",
           "--params-file", str(_params_file()),
           "-r", f"image:={COLOR_TOPIC}", "-r", f"depth:={DEPTH_TOPIC}", "-r", f"camera_info:={INFO_TOPIC}"]
    for key, value in params.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        cmd += ["-p", f"{key}:={text}"]
    return cmd


def player_command(bag: Path, rate: float = 1.0, observed: str | None = None) -> list[str]:
    """The player; it starts once the node, and the observer on ``observed``, hear every topic.

    Waiting for the node alone let the first frames reach the node before the
    observer's subscription matched on a loaded machine (CI saw 16 of 60).
    """
    cmd = [sys.executable, "-m", "sa2va_i_ros.cli.play", str(bag), "--qos", "reliable", "--rate", str(rate),
           "--wait-for-subscribers", "60"]
    return cmd + (["--subscribers", f"{observed}=2"] if observed else [])


def run_replay(opts: ReplayOptions) -> ReplayResult:
    """Start the node and the player as processes, observe from this one."""
    env = local_ros_env()
    node_proc = subprocess.Popen(node_command(opts), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True)
    player, observer = None, Observer(opts, domain_id=int(env["ROS_DOMAIN_ID"]))
    result = observer.result
    try:
        observer.activate()
        observer.wait_for_outputs()
        player = subprocess.Popen(player_command(opts.bag, opts.rate, observed_camera_topic(opts)), env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        observer.query_and_collect(lambda: player.poll() is not None, lambda: player.send_signal(signal.SIGINT))
    finally:
        observer.close()
        if player is not None:
            if player.poll() is None:
                player.send_signal(signal.SIGINT)
            result.player_log = player.communicate(timeout=30)[0]
        node_proc.send_signal(signal.SIGINT)
        try:
            result.node_log = node_proc.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            node_proc.kill()
            result.node_log = node_proc.communicate()[0]
        result.node_returncode = node_proc.returncode
    return result
