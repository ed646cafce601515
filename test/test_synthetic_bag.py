"""Synthetic recordings as rosbag2 bags (mcap and sqlite3) and DAVIS-style GT: what is written reads back."""

from __future__ import annotations

import json
import time
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image as PILImage
from rclpy.serialization import deserialize_message
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from sa2va_i_ros.cli.make_bag import main as make_bag
from sa2va_i_ros.testing.synthetic.bag_writer import (
    COLOR_TOPIC,
    COMPRESSED_COLOR_TOPIC,
    COMPRESSED_DEPTH_TOPIC,
    DEPTH_TOPIC,
    INFO_TOPIC,
    TYPESTORE,
    write_bag,
)
from sa2va_i_ros.testing.synthetic.gt import GtWriter, read_gt
from sa2va_i_ros.testing.synthetic.scene import FRAME_ID, SceneSpec, generate_frames

SPEC = SceneSpec(width=96, height=72, frames=8, fps=10.0, seed=3)


@pytest.fixture(scope="module")
def frames():
    return list(generate_frames(SPEC))


def _stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_round_trip(tmp_path, frames, storage):
    info = SPEC.camera.camera_info()
    t0 = time.perf_counter()
    assert write_bag(tmp_path / "bag", frames, info, storage) == 3 * len(frames)
    print(f"\n{storage}: wrote {3 * len(frames)} messages in {time.perf_counter() - t0:.3f} s")
    suffix = {"mcap": ".mcap", "sqlite3": ".db3"}[storage]
    assert sorted(p.suffix for p in (tmp_path / "bag").iterdir()) == sorted([suffix, ".yaml"])
    assert f"storage_identifier: {storage}" in (tmp_path / "bag" / "metadata.yaml").read_text()
    by_topic = defaultdict(list)
    with Reader(tmp_path / "bag") as reader:
        assert {t: c.msgtype for t, c in reader.topics.items()} == {
            COLOR_TOPIC: "sensor_msgs/msg/Image", DEPTH_TOPIC: "sensor_msgs/msg/Image",
            INFO_TOPIC: "sensor_msgs/msg/CameraInfo"}
        for conn, stamp, data in reader.messages():
            assert len(data) % 4 == 0  # padded as DDS delivers it, so a replay is byte-identical
            by_topic[conn.topic].append((stamp, bytes(data), conn.msgtype))
    for topic, messages in by_topic.items():
        assert [stamp for stamp, _, _ in messages] == [f.stamp_ns for f in frames], topic
    for f, (_, color, _), (_, depth, _), (_, cinfo, _) in zip(
            frames, by_topic[COLOR_TOPIC], by_topic[DEPTH_TOPIC], by_topic[INFO_TOPIC], strict=True):
        rgb, dep, inf = (deserialize_message(color, Image), deserialize_message(depth, Image),
                         deserialize_message(cinfo, CameraInfo))
        for msg in (rgb, dep, inf):
            assert _stamp_ns(msg.header) == f.stamp_ns and msg.header.frame_id == FRAME_ID
        assert (rgb.encoding, rgb.height, rgb.width, rgb.step, rgb.is_bigendian) == ("rgb8", 72, 96, 288, 0)
        assert (dep.encoding, dep.height, dep.width, dep.step, dep.is_bigendian) == ("16UC1", 72, 96, 192, 0)
        assert np.array_equal(np.frombuffer(bytes(rgb.data), np.uint8).reshape(72, 96, 3), f.rgb)
        assert np.array_equal(np.frombuffer(bytes(dep.data), "<u2").reshape(72, 96), f.depth_mm)
        assert (inf.width, inf.height, inf.distortion_model) == (96, 72, "plumb_bob")
        for key in ("d", "k", "r", "p"):
            assert list(getattr(inf, key)) == info[key]
        # rosbags reads the same bytes to the same values
        again = TYPESTORE.deserialize_cdr(color, "sensor_msgs/msg/Image")
        assert _stamp_ns(again.header) == f.stamp_ns and np.array_equal(again.data, f.rgb.reshape(-1))


def test_gt_folder_reads_back(tmp_path, frames):
    writer = GtWriter(tmp_path / "gt", SPEC)
    for f in frames:
        writer.add(f)
    writer.close()
    gt = read_gt(tmp_path / "gt")
    assert gt.frames == [f"{k:05d}" for k in range(len(frames))]
    assert gt.stamps_ns == [f.stamp_ns for f in frames]
    assert gt.expressions["0"] == ("the cup left of the bowl", 1)
    assert gt.expressions["1"] == ("the bowl", 2)
    assert gt.objects[1] == "cup_left" and gt.frame_id == FRAME_ID
    assert gt.camera_info == SPEC.camera.camera_info()
    meta = json.loads((tmp_path / "gt" / "meta_expressions.json").read_text())
    expression = meta["videos"]["tabletop"]["expressions"]["0"]
    assert expression == {"exp": "the cup left of the bowl", "obj_id": "1"}
    with PILImage.open(tmp_path / "gt" / "Annotations" / "tabletop" / "00000.png") as png:
        assert png.mode == "P"
        assert png.getpalette()[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]
    for k, f in enumerate(frames):
        assert np.array_equal(gt.ids(k), f.ids)
        masks = gt.masks(k)
        assert set(masks) == set(gt.objects)
        assert all(np.array_equal(masks[i], f.ids == i) for i in masks)
        assert np.abs(gt.rgb(k).astype(int) - f.rgb).mean() < 4.0  # JPEG quality 95


def test_make_bag_cli(tmp_path, capsys):
    args = [str(tmp_path), "--frames", "3", "--size", "64x48", "--fps", "30"]
    assert make_bag(args) == 0
    assert (tmp_path / "tabletop_mcap" / "metadata.yaml").is_file()
    start = SceneSpec().start_ns
    assert read_gt(tmp_path / "gt").stamps_ns == [start + round(k * 1e9 / 30) for k in range(3)]
    assert make_bag(args) == 1  # never overwrites silently
    assert "exists" in capsys.readouterr().err
    assert make_bag([*args, "--storage", "sqlite3"]) == 0  # the other storage shares the same gt/
    assert "kept" in capsys.readouterr().out
    assert (tmp_path / "tabletop_sqlite3" / "metadata.yaml").is_file()
    assert make_bag([*args, "--storage", "sqlite3", "--seed", "5"]) == 1
    assert make_bag([*args, "--seed", "5", "--force"]) == 0
    assert read_gt(tmp_path / "gt").scene["seed"] == 5
    with pytest.raises(SystemExit):
        make_bag([*args, "--size", "64by48"])


def test_compressed_bag_holds_what_image_transport_publishes(tmp_path, frames):
    """JPEG colour and compressedDepth PNG depth, read back with rclpy and decoded by Pillow and struct alone."""
    import io
    import struct

    assert write_bag(tmp_path / "bag", frames, SPEC.camera.camera_info(), "mcap", compressed=True) == 3 * len(frames)
    by_topic = defaultdict(list)
    with Reader(tmp_path / "bag") as reader:
        assert {t: c.msgtype for t, c in reader.topics.items()} == {
            "/camera/camera/color/image_raw/compressed": "sensor_msgs/msg/CompressedImage",
            "/camera/camera/aligned_depth_to_color/image_raw/compressedDepth": "sensor_msgs/msg/CompressedImage",
            INFO_TOPIC: "sensor_msgs/msg/CameraInfo"}
        for conn, stamp, data in reader.messages():
            assert len(data) % 4 == 0
            by_topic[conn.topic].append((stamp, bytes(data)))
    for f, (_, color), (_, depth) in zip(frames, by_topic[COMPRESSED_COLOR_TOPIC], by_topic[COMPRESSED_DEPTH_TOPIC],
                                         strict=True):
        jpg, dep = deserialize_message(color, CompressedImage), deserialize_message(depth, CompressedImage)
        for msg in (jpg, dep):
            assert _stamp_ns(msg.header) == f.stamp_ns and msg.header.frame_id == FRAME_ID
        assert jpg.format == "rgb8; jpeg compressed bgr8"
        rgb = np.asarray(PILImage.open(io.BytesIO(bytes(jpg.data))))
        assert rgb.shape == f.rgb.shape and np.abs(rgb.astype(int) - f.rgb).mean() < 3
        assert dep.format == "16UC1; compressedDepth png"
        data = bytes(dep.data)
        assert struct.unpack("<i", data[:4]) == (0,)  # INV_DEPTH, then two float32 parameters
        mm = np.asarray(PILImage.open(io.BytesIO(data[12:])))
        assert mm.dtype == np.uint16 and np.array_equal(mm, f.depth_mm)  # PNG: lossless, depths < 10 m


def test_make_bag_cli_compressed(tmp_path, capsys):
    args = [str(tmp_path), "--frames", "2", "--size", "64x48"]
    assert make_bag([*args, "--compressed"]) == 0
    out = capsys.readouterr().out
    assert "compressed" in out and "/camera/camera/color/image_raw/compressed" in out
    assert (tmp_path / "tabletop_mcap_compressed" / "metadata.yaml").is_file()
    assert make_bag(args) == 0  # the raw bag of the same scene beside it, sharing gt/
    assert "kept" in capsys.readouterr().out
