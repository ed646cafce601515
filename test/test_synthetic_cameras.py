"""A second camera of the synthetic table (issue 24 item 4): a wrist view on its own topics, same stamps."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from rclpy.serialization import deserialize_message
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import CameraInfo, Image

from sa2va_i_ros.cli.make_bag import main as make_bag
from sa2va_i_ros.testing.synthetic.bag_writer import write_bag, write_cameras_bag
from sa2va_i_ros.testing.synthetic.gt import read_gt
from sa2va_i_ros.testing.synthetic.scene import SHAPES, SceneSpec, generate_frames, render

CUP = 1
HEAD = SceneSpec(width=96, height=72, frames=6, fps=10.0, seed=3)
WRIST = SceneSpec(width=96, height=72, frames=6, fps=10.0, seed=3, view="wrist")


def test_wrist_view_is_its_own_camera_of_the_same_world():
    """Each view's depth back-projects onto the same red cup in the world, seen from two poses."""
    big = {name: SceneSpec(view=name) for name in ("head", "wrist")}
    k = 60  # head: panned away, the red cup out of view; the wrist camera is over it
    frames = {name: render(spec, k) for name, spec in big.items()}
    head, wrist = frames["head"], frames["wrist"]
    assert head.stamp_ns == wrist.stamp_ns and head.frame_id != wrist.frame_id
    assert not np.allclose(head.world_from_camera, wrist.world_from_camera)
    assert not head.mask(CUP).any() and wrist.mask(CUP).sum() > 1000
    cup, cam = SHAPES[CUP], big["wrist"].camera
    v, u = np.nonzero(wrist.mask(CUP))
    world = cam.back_project(u, v, wrist.depth_mm[v, u] / 1000.0) @ wrist.world_from_camera[:3, :3].T \
        + wrist.world_from_camera[:3, 3]
    assert np.hypot(world[:, 0] - cup.x, world[:, 1] - cup.y).max() <= cup.radius + 0.003
    assert world[:, 2].min() >= -0.003 and world[:, 2].max() <= cup.height + 0.003
    # close up: over the whole clip the cup is larger in the wrist view wherever both see it
    both = [(render(big["head"], i).mask(CUP).sum(), render(big["wrist"], i).mask(CUP).sum()) for i in range(0, 90, 9)]
    assert all(w > h for h, w in both if h > 0 and w > 0) and sum(h > 0 and w > 0 for h, w in both) >= 3


def test_unknown_view_is_refused():
    with pytest.raises(ValueError, match="unknown camera view 'elbow'; known: head, wrist"):
        SceneSpec(view="elbow")


def test_head_only_bag_is_unchanged_by_the_second_view(tmp_path):
    """write_bag (one camera) and write_cameras_bag with the head alone write the same messages."""
    info = HEAD.camera.camera_info()
    write_bag(tmp_path / "one", generate_frames(HEAD), info)
    write_cameras_bag(tmp_path / "streams", {"head": (generate_frames(HEAD), info)})
    read = []
    for name in ("one", "streams"):
        with Reader(tmp_path / name) as reader:
            read.append([(c.topic, t, bytes(d)) for c, t, d in reader.messages()])
    assert read[0] == read[1]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_two_cameras_in_one_bag(tmp_path, storage):
    streams = {s.view: (generate_frames(s), s.camera.camera_info()) for s in (HEAD, WRIST)}
    seen = []
    count = write_cameras_bag(tmp_path / "bag", streams, storage, on_frame=lambda cam, f: seen.append((cam, f.index)))
    assert count == 6 * HEAD.frames
    assert seen == [(cam, k) for k in range(HEAD.frames) for cam in ("head", "wrist")]  # written together
    by_topic = defaultdict(list)
    with Reader(tmp_path / "bag") as reader:
        assert set(reader.topics) == {
            "/camera/camera/color/image_raw", "/camera/camera/aligned_depth_to_color/image_raw",
            "/camera/camera/color/camera_info", "/camera/wrist/color/image_raw",
            "/camera/wrist/aligned_depth_to_color/image_raw", "/camera/wrist/color/camera_info"}
        for conn, stamp, data in reader.messages():
            by_topic[conn.topic].append((stamp, bytes(data)))
    stamps = [HEAD.stamp_ns(k) for k in range(HEAD.frames)]
    for topic, messages in by_topic.items():
        assert [s for s, _ in messages] == stamps, topic
    for k, wrist in enumerate(generate_frames(WRIST)):
        img = deserialize_message(by_topic["/camera/wrist/color/image_raw"][k][1], Image)
        assert img.header.frame_id == "wrist_color_optical_frame"
        assert np.array_equal(np.frombuffer(bytes(img.data), np.uint8).reshape(wrist.rgb.shape), wrist.rgb)
        head = deserialize_message(by_topic["/camera/camera/color/image_raw"][k][1], Image)
        assert head.header.frame_id == "camera_color_optical_frame"
        assert not np.array_equal(np.frombuffer(bytes(head.data), np.uint8).reshape(wrist.rgb.shape), wrist.rgb)
    info = deserialize_message(by_topic["/camera/wrist/color/camera_info"][0][1], CameraInfo)
    assert info.header.frame_id == "wrist_color_optical_frame" and list(info.k) == WRIST.camera.k()


def test_make_bag_cli_two_cameras(tmp_path, capsys):
    args = [str(tmp_path), "--frames", "3", "--size", "64x48", "--cameras", "head,wrist"]
    assert make_bag(args) == 0
    out = capsys.readouterr().out
    assert "/camera/wrist/color/image_raw" in out and "/camera/camera/color/image_raw" in out
    assert (tmp_path / "tabletop_head_wrist_mcap" / "metadata.yaml").is_file()
    head, wrist = read_gt(tmp_path / "gt"), read_gt(tmp_path / "gt_wrist")
    assert head.stamps_ns == wrist.stamps_ns
    assert (head.frame_id, wrist.frame_id) == ("camera_color_optical_frame", "wrist_color_optical_frame")
    assert wrist.scene["view"] == "wrist"
    frame = render(SceneSpec(width=64, height=48, frames=3, view="wrist"), 1)
    assert np.array_equal(wrist.ids(1), frame.ids)
    assert make_bag([str(tmp_path), "--frames", "3", "--size", "64x48"]) == 0  # the head-only bag shares gt/
    assert "kept" in capsys.readouterr().out
    for bad in ("head,head", "elbow", ""):
        with pytest.raises(SystemExit):
            make_bag([str(tmp_path), "--cameras", bad])
