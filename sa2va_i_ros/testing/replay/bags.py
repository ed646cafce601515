"""What a bag holds, read straight from the file with rosbags: the reference the checks and the demo compare with."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sa2va_i_ros.testing.replay.result import stamp_ns
from sa2va_i_ros.testing.synthetic.bag_writer import COLOR_TOPIC, COMPRESSED_COLOR_TOPIC, DEPTH_TOPIC, TYPESTORE


def bag_depths(bag: Path) -> dict[int, np.ndarray]:
    """Depth in metres of every frame of a bag, by header stamp (read with rosbags)."""
    from rosbags.rosbag2 import Reader

    depths = {}
    with Reader(bag) as reader:
        conns = [c for c in reader.connections if c.topic == DEPTH_TOPIC]
        for conn, _, raw in reader.messages(connections=conns):
            msg = TYPESTORE.deserialize_cdr(raw, conn.msgtype)
            depths[stamp_ns(msg.header)] = np.frombuffer(msg.data.tobytes(), "<u2").reshape(
                msg.height, msg.width) / 1000.0
    return depths


def bag_frames(bag: Path) -> dict[int, np.ndarray]:
    """RGB of every colour frame of a bag (raw or image_transport compressed), by header stamp."""
    from rosbags.rosbag2 import Reader

    from sa2va_i_ros.imaging.compressed_codec import decode_compressed_rgb
    from sa2va_i_ros.imaging.image_codec import decode_rgb

    frames = {}
    with Reader(bag) as reader:
        conns = [c for c in reader.connections if c.topic in (COLOR_TOPIC, COMPRESSED_COLOR_TOPIC)]
        for conn, _, raw in reader.messages(connections=conns):
            msg = TYPESTORE.deserialize_cdr(raw, conn.msgtype)
            if conn.topic == COLOR_TOPIC:
                rgb = decode_rgb(msg.height, msg.width, msg.encoding, msg.step, msg.data.tobytes())
            else:
                rgb = decode_compressed_rgb(msg.format, msg.data.tobytes())
            frames[stamp_ns(msg.header)] = rgb
    return frames
