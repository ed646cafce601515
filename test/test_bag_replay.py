"""Rosbag replays into the node, three processes (node, player, observer): mcap, sqlite3, and an mcap of
image_transport's compressed topics (JPEG colour, compressedDepth PNG depth) read with image_transport:=compressed.

The synthetic tabletop bag is played into a `segment_node` process with the
tiny checkpoint; after 20 frames the observer asks "the cup left of the bowl".
`check_replay` (shared with test/launch/, the launch_testing version) checks
what the node published against the bag. Latencies are printed, not asserted.
"""

import statistics

import pytest

from sa2va_i_ros.cli import make_bag
from sa2va_i_ros.testing.replay import ReplayOptions, bag_depths, check_markers, check_replay, run_replay
from sa2va_i_ros.testing.synthetic.gt import read_gt
from sa2va_i_ros.testing.tiny_sa2va import DEFAULT_ANSWER  # what the tiny checkpoint was built to say

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    out = tmp_path_factory.mktemp("bags")
    for storage in ("mcap", "sqlite3"):
        # 16 s of camera: however slow this machine, the track gets live frames; the player stops after 5
        assert make_bag.main([str(out), "--storage", storage, "--frames", "240"]) == 0
    assert make_bag.main([str(out), "--storage", "mcap", "--frames", "240", "--compressed"]) == 0
    return out


@pytest.mark.parametrize("storage", ["mcap", "sqlite3", "mcap_compressed"])
def test_replayed_bag_through_the_node(recording, tiny_checkpoint, storage):
    gt = read_gt(recording / "gt")
    bag = recording / f"tabletop_{storage}"
    compressed = storage.endswith("compressed")
    params = {"image_transport": "compressed"} if compressed else {}  # production settings otherwise
    result = run_replay(ReplayOptions(bag=bag, model=tiny_checkpoint, query_after=20, stop_after_live=5,
                                      params=params, compressed=compressed, want_markers=True))
    assert result.node_returncode == 0 and "Traceback" not in result.node_log, result.node_log[-3000:]
    assert result.reply.answer == DEFAULT_ANSWER
    # object points are checked against the raw bag's depth (PNG is lossless): a reference that is not
    # decoded by the compressedDepth code under test
    depths = bag_depths(recording / "tabletop_mcap")
    problems = check_replay(result, list(gt.stamps_ns), gt.frame_id, gt.camera_info["k"], depths)
    assert not problems, problems
    problems = check_markers(result, list(gt.stamps_ns), gt.frame_id)
    assert not problems, problems

    reply, lat, live = result.reply, result.latencies_ms(), result.latencies_ms(live_only=True)
    print(f"\n[{storage}] window {reply.window_frames} frames, {len(result.objects)} later frames answered; "
          f"camera -> objects latency p50 {statistics.median(lat):.1f} ms (live frames: "
          f"{statistics.median(live) if live else float('nan'):.1f} ms), max {max(lat):.1f} ms; grounding "
          f"{reply.timing.total_ms:.0f} ms (language {reply.timing.language_ms:.0f}, "
          f"propagate {reply.timing.propagate_ms:.0f})")
