"""Deterministic synthetic RGB-D tabletop recordings with ground truth (numpy only, no ROS import).

``scene`` renders the frames, ``gt`` writes and reads the DAVIS-style ground
truth; ``bag_writer`` (needs rosbags, not ROS) writes them as a rosbag2 bag.
"""

from sa2va_i_ros.testing.synthetic.camera import PinholeCamera, look_at
from sa2va_i_ros.testing.synthetic.gt import GroundTruth, GtWriter, read_gt
from sa2va_i_ros.testing.synthetic.scene import EXPRESSIONS, OBJECTS, Frame, SceneSpec, generate_frames, render

__all__ = ["EXPRESSIONS", "OBJECTS", "Frame", "GroundTruth", "GtWriter", "PinholeCamera", "SceneSpec",
           "generate_frames", "look_at", "read_gt", "render"]
