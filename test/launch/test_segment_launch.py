"""launch_testing version of test/test_bag_replay.py, for users with a ROS 2 distro.

    colcon test --packages-select sa2va_i_ros      # registered in CMakeLists.txt (BUILD_TESTING)
    launch_test test/launch/test_segment_launch.py # or directly

It starts `segment.launch.py` (the node configured and activated by the launch
file, tiny random checkpoint, depth on) and a bag replay of the synthetic
tabletop recording, asks "the cup left of the bowl" after 20 frames and applies
the same `check_replay` as the CI test. CI cannot run it (launch_testing is not
on PyPI); pytest does not collect this folder (see test/conftest.py).
"""

import atexit
import os
import shutil
import sys
import tempfile
import unittest
from pathlib import Path

import launch_testing
import launch_testing.actions
import pytest
import yaml
from launch.actions import ExecuteProcess, IncludeLaunchDescription, SetEnvironmentVariable, TimerAction
from launch.events.process import ProcessExited
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription
from sa2va_i_ros.cli import make_bag
from sa2va_i_ros.testing.replay import Observer, ReplayOptions, bag_depths, check_replay, player_command
from sa2va_i_ros.testing.ros_env import fastdds_profile
from sa2va_i_ros.testing.synthetic.gt import read_gt
from sa2va_i_ros.testing.tiny_sa2va import write_tiny_checkpoint

WORK = Path(tempfile.mkdtemp(prefix="sa2va_i_launch_test_"))
atexit.register(shutil.rmtree, WORK, ignore_errors=True)  # checkpoint, bag and params of this run
CHECKPOINT, RECORDING = WORK / "checkpoint", WORK / "recording"
BAG = RECORDING / "tabletop_mcap"
# as test_bag_replay.py: production settings (check_replay accounts for the frames the node drops or thins)
OVERRIDES: dict = {}


def params_file() -> Path:
    """config/segment.yaml with the overrides, passed to the launch file as params_file."""
    config = yaml.safe_load((Path(fastdds_profile()).parent / "segment.yaml").read_text())
    config["/**"]["ros__parameters"].update(OVERRIDES)
    path = WORK / "segment.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.launch_test
def generate_test_description():
    write_tiny_checkpoint(CHECKPOINT)
    make_bag.main([str(RECORDING), "--frames", "240"])  # 16 s: live frames after the track joins
    segment = IncludeLaunchDescription(
        PythonLaunchDescriptionSource([FindPackageShare("sa2va_i_ros"), "/launch/segment.launch.py"]),
        launch_arguments={"model": str(CHECKPOINT), "device": "cpu", "use_depth": "true",
                          "params_file": str(params_file())}.items())
    player = ExecuteProcess(cmd=player_command(BAG), output="screen")
    return LaunchDescription([
        # the network rule: discovery stays on this machine (the isolated test sets ROS_DOMAIN_ID)
        SetEnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST"),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", str(fastdds_profile())),
        segment,
        TimerAction(period=8.0, actions=[player]),  # let the launch file configure and activate the node
        launch_testing.actions.ReadyToTest(),
    ]), {"player": player}


class TestReplayedBag(unittest.TestCase):
    def test_query_mid_stream_and_every_later_frame_answered(self, proc_info, player):
        os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        observer = Observer(ReplayOptions(bag=BAG, model=CHECKPOINT, query_after=20))

        def player_done():
            try:
                return isinstance(proc_info[player], ProcessExited)
            except KeyError:
                return False

        try:
            result = observer.query_and_collect(player_done)
        finally:
            observer.close()
        gt = read_gt(RECORDING / "gt")
        problems = check_replay(result, list(gt.stamps_ns), gt.frame_id, gt.camera_info["k"], bag_depths(BAG))
        self.assertEqual(problems, [])
        print(f"window {result.reply.window_frames} frames, {len(result.objects)} frames answered",
              file=sys.stderr)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_processes_exit_cleanly(self, proc_info):
        # SIGINT at the end of the test: 0, or the signal's code for processes stopped by it
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])
