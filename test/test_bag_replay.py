"""Rosbag replays into the node, three processes (node, player, observer), mcap and sqlite3.

The synthetic tabletop bag is played into a `segment_node` process with the
tiny checkpoint; after 20 frames the observer asks "the cup left of the bowl".
What the node publishes is checked against the bag: sampled stamps and indices,
one objects message and one mask per later frame with that frame's exact
header, object points inside the camera frustum at the depth of the masked
pixels. Latencies are printed (measured, not asserted).
"""

import statistics

import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from sa2va_i_ros.core.sampling import sample_indices
from sa2va_i_ros.synthetic.bag_writer import DEPTH_TOPIC
from sa2va_i_ros.synthetic.gt import read_gt
from sa2va_i_ros.tools import make_bag
from sa2va_i_ros.tools.replay_run import ReplayOptions, run_replay

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    out = tmp_path_factory.mktemp("bags")
    for storage in ("mcap", "sqlite3"):
        assert make_bag.main([str(out), "--storage", storage, "--frames", "60"]) == 0
    return out


def bag_depths(bag) -> dict[int, np.ndarray]:
    store = get_typestore(Stores.ROS2_KILTED)
    depths = {}
    with Reader(bag) as reader:
        conns = [c for c in reader.connections if c.topic == DEPTH_TOPIC]
        for conn, _, raw in reader.messages(connections=conns):
            msg = store.deserialize_cdr(raw, conn.msgtype)
            stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            depths[stamp] = np.frombuffer(msg.data.tobytes(), "<u2").reshape(msg.height, msg.width) / 1000.0
    return depths


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_replayed_bag_through_the_node(recording, tiny_checkpoint, storage):
    gt = read_gt(recording / "gt")
    bag = recording / f"tabletop_{storage}"
    result = run_replay(ReplayOptions(bag=bag, model=tiny_checkpoint, query_after=20,
                                      params={"image_qos": "reliable", "image_queue_depth": 100}))
    assert result.node_returncode == 0 and "Traceback" not in result.node_log, result.node_log[-3000:]
    reply = result.reply
    assert reply.success, reply.message
    assert reply.answer == "Sure, [SEG]."

    bag_stamps = list(gt.stamps_ns)
    sampled = [s.sec * 10**9 + s.nanosec for s in reply.sampled_stamps]
    assert set(sampled) <= set(bag_stamps), "sampled stamps must be stamps of the bag"
    # the window is the frames buffered when the query came: consecutive bag frames ending at the newest
    first = bag_stamps.index(sampled[0])
    window = bag_stamps[first:first + reply.window_frames]
    assert list(reply.sampled_indices) == sample_indices(reply.window_frames, 5)
    assert [window[i] for i in reply.sampled_indices] == sampled
    assert reply.window_frames >= result.query_sent_after - 2  # frames in flight may not be buffered yet

    later = [s for s in bag_stamps if s > window[-1]]
    assert len(later) >= 20
    frame_id = gt.frame_id
    for stamp in later:  # every later bag frame: objects and a mask with exactly its header
        assert stamp in result.objects and stamp in result.masks, f"no output for frame at {stamp}"
        for msg in (result.objects[stamp], result.masks[stamp]):
            assert msg.header.frame_id == frame_id
            assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == stamp
        (obj,) = result.objects[stamp].objects
        assert obj.track_id == reply.track_id and obj.query == "the cup left of the bowl"
        assert obj.mask.header == result.objects[stamp].header
    assert set(result.objects) <= set(bag_stamps)  # nothing invented

    depths = bag_depths(bag)
    k = gt.camera_info["k"]
    fx, cx, fy, cy = k[0], k[2], k[4], k[5]
    checked = 0
    for stamp, cloud in result.points.items():
        pts = np.frombuffer(bytes(cloud.data), [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("id", "<u4")])
        if not len(pts):
            continue
        mask = np.frombuffer(bytes(result.masks[stamp].data), np.uint8).reshape(
            result.masks[stamp].height, result.masks[stamp].width)
        u = np.rint(pts["x"] * fx / pts["z"] + cx).astype(int)
        v = np.rint(pts["y"] * fy / pts["z"] + cy).astype(int)
        h, w = mask.shape
        assert (pts["z"] > 0).all() and (u >= 0).all() and (u < w).all() and (v >= 0).all() and (v < h).all()
        assert (mask[v, u] == 255).all(), "points come from masked pixels"
        np.testing.assert_allclose(pts["z"], depths[stamp][v, u], atol=1e-3)
        checked += 1
    assert checked >= 5, "object points were checked on several frames"

    lat, live = result.latencies_ms(), result.latencies_ms(live_only=True)
    print(f"\n[{storage}] frames after the query: {len(later)}; camera -> objects latency "
          f"p50 {statistics.median(lat):.1f} ms over all of them, live frames (after the reply) p50 "
          f"{statistics.median(live) if live else float('nan'):.1f} ms, max {max(lat):.1f} ms; "
          f"grounding {reply.timing.total_ms:.0f} ms (language {reply.timing.language_ms:.0f}, "
          f"propagate {reply.timing.propagate_ms:.0f})")
