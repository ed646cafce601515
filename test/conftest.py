"""Shared pytest set-up: the network rule for every ROS process the tests start.

Importing this module claims a ROS domain id for the pytest process (kept until
it exits) and sets ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and the project's
Fast DDS profile in os.environ, so every rclpy context and every subprocess the
tests start inherits them.
"""

from __future__ import annotations

import pytest

from sa2va_i_ros.testing.ros_env import apply_local_ros_env

ROS_ENV = apply_local_ros_env()

# launch_testing versions of the integration tests, for ROS distros (launch_testing is not on PyPI):
# run by `colcon test` / `launch_test`, never collected by pytest here.
collect_ignore = ["launch"]


@pytest.fixture
def rclpy_context():
    """A fresh rclpy context per test (a second global rclpy.init() would raise)."""
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        context.try_shutdown()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A tiny Sa2VA-i checkpoint in the official layout (written once per session)."""
    from sa2va_i_ros.testing.tiny_sa2va import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny_sa2va_i"))


@pytest.fixture(scope="session")
def engine(tiny_checkpoint):
    """The grounding engine on the tiny checkpoint, loaded through the product path."""
    from sa2va_i_ros.grounding.engine import GroundingEngine

    return GroundingEngine.load(str(tiny_checkpoint))


@pytest.fixture(scope="session")
def answer_rig(tmp_path_factory):
    """The answer rig: a tiny checkpoint whose answer depends on a word of the query.

    ``answer_rig.QUERIES[case]`` gives a query per case: one_seg, two_seg,
    seg_last ([SEG] right before the stop word), no_seg, endless (runs to
    max_new_tokens), endless_seg (max_new_tokens lands on a [SEG]).
    """
    from sa2va_i_ros.testing.answer_rig import write_answer_rig

    return write_answer_rig(tmp_path_factory.mktemp("answer_rig"))


@pytest.fixture(scope="session")
def rig_engine(answer_rig):
    """The grounding engine on the answer rig, loaded through the product path."""
    from sa2va_i_ros.grounding.engine import GroundingEngine

    return GroundingEngine.load(str(answer_rig))


@pytest.fixture
def frames():
    """Ten 120x160 RGB frames of a moving square on noise (deterministic)."""
    import numpy as np

    rng = np.random.default_rng(7)
    out = []
    for t in range(10):
        f = rng.integers(0, 60, (120, 160, 3), dtype=np.uint8)
        f[30:70, 20 + 8 * t:60 + 8 * t] = (220, 40, 40)
        out.append(f)
    return out
