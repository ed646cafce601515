"""Shared pytest set-up: the network rule for every ROS process the tests start.

Importing this module claims a ROS domain id for the pytest process (kept until
it exits) and sets ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and the project's
Fast DDS profile in os.environ, so every rclpy context and every subprocess the
tests start inherits them.
"""

from __future__ import annotations

import pytest

from sa2va_i_ros.tools.ros_env import apply_local_ros_env

ROS_ENV = apply_local_ros_env()


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
