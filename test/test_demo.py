"""`make demo`, the README's first command, end to end in a temporary folder."""

import json

import numpy as np
import pytest
from PIL import Image

from sa2va_i_ros.cli import demo
from sa2va_i_ros.testing.tiny_sa2va import DEFAULT_ANSWER  # what the tiny checkpoint was built to say

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_demo_writes_a_consistent_summary(tmp_path, capsys):
    assert demo.main(["--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("NOTE: the embedded checkpoint has RANDOM weights")
    assert printed.rstrip().endswith("--device cuda)")  # the note comes first and last
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["success"] and summary["answer"] == DEFAULT_ANSWER
    assert summary["frames_in_recording"] == demo.RECORDING_FRAMES
    assert summary["frames_replayed"] >= 20 and summary["stamps_match"]
    # every frame after the query came out, or the node reports it dropped (stale) or thinned (catch-up)
    missing = summary["frames_without_output"]
    assert summary["masks_published"] + len(missing) == summary["frames_after_query"] > 0
    assert len(missing) <= (summary["frames_dropped_stale"] + summary["frames_thinned_by_catch_up"]
                            + summary["frames_not_received"])
    assert summary["frames_tracked_live"] >= 15 and summary["live_latency_ms_p50"] > 0  # tracked on live frames
    assert len(summary["sampled_stamps_ns"]) == 5 and summary["latency_ms_p50"] > 0
    assert len(list(tmp_path.glob("overlay_*.png"))) >= 1  # every output can carry an overlay, catch-up too
    # the pictures: every replayed frame in the video, and the timeline
    assert summary["frames_tracked_live"] + summary["frames_tracked_catch_up"] == summary["objects_published"]
    from sa2va_i_ros.offline.media import read_frames

    frames, _, fps = read_frames(tmp_path / summary["video"])
    assert len(frames) == summary["frames_replayed"] and frames[0].shape == (240, 320, 3) and fps == 15
    assert not np.array_equal(frames[0], frames[-1])
    timeline = Image.open(tmp_path / summary["timeline"])
    assert timeline.format == "PNG" and timeline.width > 0 and timeline.height > 0
    assert str((tmp_path / "replay.mp4").resolve()) in printed and "timeline.png" in printed
