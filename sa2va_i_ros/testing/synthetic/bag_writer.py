"""rosbag2 recordings of a synthetic scene, written with rosbags (no ROS installation needed).

Three topics, as a RealSense-style RGB-D driver publishes them: colour (rgb8),
depth aligned to colour (16UC1 millimetres) and the colour CameraInfo, one of
each per frame with the frame's stamp in the header and as the bag's receive
time, so a replay reproduces the recorded timing. mcap is the default storage
(the rosbag2 default since Iron); sqlite3 on request. ``compressed=True``
records what image_transport's plugins publish instead of the raw images:
``.../image_raw/compressed`` (JPEG, ``rgb8; jpeg compressed bgr8``) and
``.../image_raw/compressedDepth`` (``16UC1; compressedDepth png``), as most
recorded bags of real robots hold them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from sa2va_i_ros.imaging.compressed_codec import encode_depth_16uc1, encode_jpeg
from sa2va_i_ros.testing.synthetic.scene import FRAME_ID, NS_PER_S, Frame
from sa2va_i_ros.testing.synthetic.views import VIEWS, view

# realsense2_camera >= 4.54 names its topics /<namespace>/<camera name>/..., both "camera" by default
# (depth aligned to colour with align_depth.enable:=true); the launch file's defaults are the same names
COLOR_TOPIC = VIEWS["head"].color_topic  # /camera/camera/color/image_raw
DEPTH_TOPIC = VIEWS["head"].depth_topic  # /camera/camera/aligned_depth_to_color/image_raw
INFO_TOPIC = VIEWS["head"].info_topic  # /camera/camera/color/camera_info
TOPIC_TYPES = {
    COLOR_TOPIC: "sensor_msgs/msg/Image",
    DEPTH_TOPIC: "sensor_msgs/msg/Image",
    INFO_TOPIC: "sensor_msgs/msg/CameraInfo",
}
# image_transport names its transports' topics <base topic>/<transport>
COMPRESSED_COLOR_TOPIC = COLOR_TOPIC + "/compressed"
COMPRESSED_DEPTH_TOPIC = DEPTH_TOPIC + "/compressedDepth"
COMPRESSED_TOPIC_TYPES = {
    COMPRESSED_COLOR_TOPIC: "sensor_msgs/msg/CompressedImage",
    COMPRESSED_DEPTH_TOPIC: "sensor_msgs/msg/CompressedImage",
    INFO_TOPIC: "sensor_msgs/msg/CameraInfo",
}
JPEG_QUALITY = 95  # image_transport's default jpeg_quality
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
TYPESTORE = get_typestore(Stores.ROS2_KILTED)  # same definitions (and hashes) as jazzy for these types


def _header(stamp_ns: int, frame_id: str = FRAME_ID):
    types = TYPESTORE.types
    stamp = types["builtin_interfaces/msg/Time"](sec=stamp_ns // NS_PER_S, nanosec=stamp_ns % NS_PER_S)
    return types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


def _image(header, pixels: np.ndarray, encoding: str):
    height, width = pixels.shape[:2]
    data = np.ascontiguousarray(pixels).view(np.uint8).reshape(-1)
    return TYPESTORE.types["sensor_msgs/msg/Image"](
        header=header, height=height, width=width, encoding=encoding, is_bigendian=0,
        step=data.size // height, data=data)


def _compressed(header, fmt: str, data: bytes):
    return TYPESTORE.types["sensor_msgs/msg/CompressedImage"](
        header=header, format=fmt, data=np.frombuffer(data, np.uint8))


def _camera_info(header, info: dict):
    types = TYPESTORE.types
    roi = types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    arrays = {key: np.asarray(info[key], dtype=np.float64) for key in ("d", "k", "r", "p")}
    return types["sensor_msgs/msg/CameraInfo"](
        header=header, height=info["height"], width=info["width"], distortion_model=info["distortion_model"],
        binning_x=0, binning_y=0, roi=roi, **arrays)


def _wire(cdr: bytes) -> bytes:
    """CDR as a subscriber (and so ``ros2 bag record``) receives it: DDS pads the payload to 4 bytes."""
    return cdr + b"\0" * (-len(cdr) % 4)


def frame_messages(frame: Frame, camera_info: dict, compressed: bool = False, camera: str = "head"
                   ) -> dict[str, bytes]:
    """CDR bytes of the three messages of one frame, by topic, in the padded form a recording holds."""
    header = _header(frame.stamp_ns, frame.frame_id)
    color, depth_topic, info = topic_types(compressed, camera)
    if compressed:
        msgs = {
            color: _compressed(header, *encode_jpeg(frame.rgb, JPEG_QUALITY)),
            depth_topic: _compressed(header, *encode_depth_16uc1(frame.depth_mm)),
            info: _camera_info(header, camera_info),
        }
    else:
        depth = frame.depth_mm.astype("<u2", copy=False)  # is_bigendian = 0 whatever the host
        msgs = {
            color: _image(header, frame.rgb, "rgb8"),
            depth_topic: _image(header, depth, "16UC1"),
            info: _camera_info(header, camera_info),
        }
    types = topic_types(compressed, camera)
    return {topic: _wire(bytes(TYPESTORE.serialize_cdr(msg, types[topic]))) for topic, msg in msgs.items()}


def topic_types(compressed: bool = False, camera: str = "head") -> dict[str, str]:
    """Topic -> type of one camera's messages, colour, depth and CameraInfo in that order."""
    v = view(camera)
    if compressed:
        return {v.color_topic + "/compressed": "sensor_msgs/msg/CompressedImage",
                v.depth_topic + "/compressedDepth": "sensor_msgs/msg/CompressedImage",
                v.info_topic: "sensor_msgs/msg/CameraInfo"}
    return {v.color_topic: "sensor_msgs/msg/Image", v.depth_topic: "sensor_msgs/msg/Image",
            v.info_topic: "sensor_msgs/msg/CameraInfo"}


def write_bag(path: str | Path, frames: Iterable[Frame], camera_info: dict, storage: str = "mcap",
              on_frame=None, compressed: bool = False) -> int:
    """Write the head camera's frames to a new rosbag2 directory ``path``; returns the number of messages.

    ``on_frame(frame)`` is called after each frame is written (the GT writer rides
    along, so every frame is rendered once).
    """
    streams = {"head": (frames, camera_info)}
    return write_cameras_bag(path, streams, storage, compressed=compressed,
                             on_frame=None if on_frame is None else lambda _, frame: on_frame(frame))


def write_cameras_bag(path: str | Path, streams: dict[str, tuple[Iterable[Frame], dict]], storage: str = "mcap",
                      on_frame=None, compressed: bool = False) -> int:
    """Several cameras (view name -> (frames, CameraInfo fields)) in one bag, each on its own topics.

    The streams are written frame by frame together (the k-th frame of every
    camera, then the (k+1)-th), as two synchronised cameras are recorded;
    ``on_frame(camera, frame)`` follows each written frame.
    """
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")
    count = 0
    with Writer(Path(path), version=9, storage_plugin=STORAGES[storage]) as writer:
        conns = {topic: writer.add_connection(topic, msgtype, typestore=TYPESTORE)
                 for camera in streams for topic, msgtype in topic_types(compressed, camera).items()}
        infos = {camera: info for camera, (_, info) in streams.items()}
        for frames in zip(*(iter(f) for f, _ in streams.values()), strict=True):
            for camera, frame in zip(streams, frames, strict=True):
                for topic, data in frame_messages(frame, infos[camera], compressed, camera).items():
                    writer.write(conns[topic], frame.stamp_ns, data)
                    count += 1
                if on_frame is not None:
                    on_frame(camera, frame)
    return count
