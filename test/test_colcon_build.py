"""What a ROS user gets: the repository in ws/src, plain `colcon build`, then the install space.

colcon (from PyPI) builds against the ROS 2 wheels in the venv, as a ROS distro
would provide them. The generated interfaces must import from the install space
and round-trip through rclpy, and the executables, launch file and config must
be found through the ament index.
"""

import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws = tmp_path_factory.mktemp("ws")
    src = ws / "src" / "sa2va_i_ros"
    src.mkdir(parents=True)
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        if not (ROOT / rel).is_file():
            continue
        dst = src / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes((ROOT / rel).read_bytes())
        dst.chmod((ROOT / rel).stat().st_mode)
    venv = Path(sys.prefix)
    env = dict(os.environ, AMENT_PREFIX_PATH=str(venv), CMAKE_PREFIX_PATH=str(venv),
               PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}")
    build = subprocess.run([str(venv / "bin" / "colcon"), "build"], cwd=ws, env=env, capture_output=True,
                           text=True, timeout=900)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return ws


def run_in_install_space(ws, code):
    """Run Python with the install space sourced the way a ROS user sources it."""
    script = f"source {ws / 'install' / 'setup.bash'} && exec {sys.executable} -c {shlex.quote(code)}"
    env = dict(os.environ, AMENT_PREFIX_PATH=sys.prefix)
    return subprocess.run(["bash", "-c", script], cwd=ws, env=env, capture_output=True, text=True, timeout=120)


def test_plain_colcon_build_installs_interfaces_python_executables_launch_and_config(workspace):
    code = textwrap.dedent("""
        import os, time, rclpy
        import sa2va_i_ros
        from sa2va_i_ros.msg import TrackedObject
        from sa2va_i_ros.srv import Segment
        from sa2va_i_ros.action import SegmentAndTrack
        from rclpy.serialization import serialize_message, deserialize_message
        from ament_index_python.packages import get_package_share_directory, get_package_prefix
        import sa2va_i_ros.msg as m
        print("MSG_FROM", m.__file__)
        print("PKG_FROM", sa2va_i_ros.__file__)
        obj = TrackedObject(track_id=7, query="the cup left of the bowl", score=0.75)
        back = deserialize_message(serialize_message(obj), TrackedObject)
        assert (back.track_id, back.query, back.score) == (7, "the cup left of the bowl", 0.75)
        # and once through DDS
        ctx = rclpy.Context(); rclpy.init(context=ctx)
        node = rclpy.create_node("colcon_check", context=ctx)
        got = []
        node.create_subscription(TrackedObject, "check", got.append, 10)
        pub = node.create_publisher(TrackedObject, "check", 10)
        ex = rclpy.executors.SingleThreadedExecutor(context=ctx); ex.add_node(node)
        end = time.time() + 10
        while not got and time.time() < end:
            pub.publish(obj); ex.spin_once(timeout_sec=0.1)
        assert got and got[0].query == obj.query
        ctx.try_shutdown()
        assert Segment.Request().num_frames == 0 and SegmentAndTrack.Goal().query == ""
        share, prefix = get_package_share_directory("sa2va_i_ros"), get_package_prefix("sa2va_i_ros")
        print("SHARE", share)
        for exe in ("segment_node", "sa2va-i-play", "sa2va-i-make-bag", "sa2va-i-video", "sa2va-i-eval",
                    "sa2va-i-tiny-checkpoint"):
            path = os.path.join(prefix, "lib", "sa2va_i_ros", exe)
            assert os.access(path, os.X_OK), path
        assert os.path.isfile(os.path.join(share, "launch", "segment.launch.py"))
        assert os.path.isfile(os.path.join(share, "config", "segment.yaml"))
        assert os.path.isfile(os.path.join(share, "config", "fastdds_localhost.xml"))
        print("OK")
    """)
    result = run_in_install_space(workspace, code)
    assert result.returncode == 0, result.stdout + result.stderr
    install = str(workspace / "install")
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    assert lines["MSG_FROM"].startswith(install)
    assert lines["PKG_FROM"].startswith(install)
    assert lines["SHARE"].startswith(install)
    assert result.stdout.strip().endswith("OK")
