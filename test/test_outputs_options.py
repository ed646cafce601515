"""RealSense-ready outputs (issue 23 item 7): unaligned depth is said, ~/objects without masks, heavy-output QoS."""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.qos import ReliabilityPolicy
from std_msgs.msg import Header

from sa2va_i_ros.imaging.geometry import Intrinsics
from sa2va_i_ros.ros.outputs import frame_messages
from sa2va_i_ros.runtime.session import FrameOutput, ObjectOutput

HEADER = Header(stamp=Time(sec=1_700_000_003, nanosec=0), frame_id="camera_color_optical_frame")
H, W = 48, 64
INTR = Intrinsics(50.0, 50.0, 31.5, 23.5, W, H)


def _output() -> FrameOutput:
    mask = np.zeros((H, W), bool)
    mask[10:20, 10:30] = True
    return FrameOutput(HEADER, [ObjectOutput(7, "the cup", HEADER, mask, 0.9, True)], [])


def test_depth_in_another_frame_than_the_image_gives_no_3d_and_says_how_to_align_it():
    """realsense2_camera without align_depth publishes depth in camera_depth_optical_frame, often at the colour
    image's size: pixels do not correspond, so a mask must not index it (before: 3D output from wrong pixels)."""
    depth = np.full((H, W), 1.0, np.float32)
    aligned = frame_messages(_output(), None, depth, INTR, 1000, depth_frame_id="camera_color_optical_frame")
    assert not aligned.problems and aligned.points is not None
    assert np.isfinite(aligned.objects.objects[0].centroid.z)
    unaligned = frame_messages(_output(), None, depth, INTR, 1000, depth_frame_id="camera_depth_optical_frame")
    [problem] = unaligned.problems
    assert "'camera_depth_optical_frame'" in problem and "align_depth.enable:=true" in problem
    assert unaligned.points is None and np.isnan(unaligned.objects.objects[0].centroid.z)
    # another size is the other sign of unaligned depth: the same hint
    small = frame_messages(_output(), None, np.ones((H // 2, W // 2), np.float32),
                           Intrinsics(25.0, 25.0, 15.5, 11.5, W // 2, H // 2), 1000)
    assert "align_depth.enable:=true" in small.problems[0]


def test_objects_without_masks_keep_everything_but_the_mask():
    full = frame_messages(_output(), None, None, None, 1000).objects.objects[0]
    light = frame_messages(_output(), None, None, None, 1000, object_masks=False).objects.objects[0]
    assert len(full.mask.data) == W * H and len(light.mask.data) == 0 and light.mask.header == HEADER
    assert (light.track_id, light.query, light.score, light.area) == (full.track_id, full.query, full.score,
                                                                      full.area)
    assert (light.bbox.x_offset, light.bbox.width, light.bbox.height) == (10, 20, 10)


def test_heavy_outputs_qos_sets_the_overlay_and_cloud_publishers(tiny_checkpoint):
    """heavy_outputs_qos:=sensor_data makes ~/overlay and ~/object_points best effort; ~/objects and ~/mask stay
    reliable (a grasp planner needs every one); the default keeps all four reliable."""
    from node_harness import NodeHarness

    for choice, heavy in (("reliable", ReliabilityPolicy.RELIABLE), ("sensor_data", ReliabilityPolicy.BEST_EFFORT)):
        h = NodeHarness(tiny_checkpoint, name=f"heavy_{choice}", heavy_outputs_qos=choice)
        try:
            assert h.node.trigger_configure().name == "SUCCESS"
            got = {key: pub.qos_profile.reliability for key, pub in h.node.frame_publisher.pubs.items()}
            assert got == {"objects": ReliabilityPolicy.RELIABLE, "mask": ReliabilityPolicy.RELIABLE,
                           "points": heavy, "overlay": heavy}
        finally:
            h.close()
