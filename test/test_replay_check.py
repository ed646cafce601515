"""``check_replay``'s window rule, on made-up replies: the node's window may lack only frames it never received.

With production image QoS (best effort, depth 2) a loaded node misses camera
frames; its buffered window is then the bag's frames less those. The check must
accept exactly that and still catch a window that does not match the bag.
"""

from types import SimpleNamespace

from sa2va_i_ros.model.sampling import sample_indices
from sa2va_i_ros.ros.conversions import ns_to_stamp
from sa2va_i_ros.testing.replay import QUERY, ReplayResult, check_replay, node_settled, settled_report

BAG = [1_000_000_000 + k * 50_000_000 for k in range(60)]
WINDOW_PROBLEM = "sampled stamps are not the window's frames"


def window_problems(window_positions: list[int], images_received: int) -> list[str]:
    """check_replay's window problems for a node that buffered the bag frames at ``window_positions``."""
    indices = sample_indices(len(window_positions), 5)
    reply = SimpleNamespace(success=True, window_frames=len(window_positions), sampled_indices=indices,
                            sampled_stamps=[ns_to_stamp(BAG[window_positions[i]]) for i in indices], track_id=1)
    result = ReplayResult(reply=reply, camera_headers={s: None for s in BAG},
                          node_counts={"images_received": images_received, "frames_live": 1})
    problems = check_replay(result, BAG, "camera", [1, 0, 0, 0, 1, 0], {})
    return [p for p in problems if p.startswith(WINDOW_PROBLEM)]


def test_consecutive_window_with_every_frame_received_passes():
    assert window_problems(list(range(0, 20)), images_received=60) == []


def test_a_window_lacking_frames_the_node_never_received_passes():
    window = [p for p in range(0, 24) if p not in (3, 9, 10, 17)]
    assert window_problems(window, images_received=56) == []


def test_a_window_lacking_frames_the_node_did_receive_fails():
    window = [p for p in range(0, 24) if p not in (3, 9, 10, 17)]
    assert window_problems(window, images_received=58)  # only 2 unreceived, 4 missing from the window
    assert window_problems(window, images_received=60)


def test_sampled_stamps_closer_than_their_indices_fail():
    indices = sample_indices(20, 5)
    reply = SimpleNamespace(success=True, window_frames=20, sampled_indices=indices,
                            sampled_stamps=[ns_to_stamp(BAG[i // 2]) for i in indices], track_id=1)
    result = ReplayResult(reply=reply, camera_headers={s: None for s in BAG},
                          node_counts={"images_received": 40, "frames_live": 1})
    assert [p for p in check_replay(result, BAG, "camera", [1, 0, 0, 0, 1, 0], {}) if p.startswith(WINDOW_PROBLEM)]


# what the replay harness waits for before it checks: the node's report that it is done with the last frame
DONE = {"newest_stamp_ns": str(BAG[-1]), "worker_idle": "True", "outputs_pending": "0",
        "last_output_stamp_ns": str(BAG[-1])}


def test_the_harness_waits_until_the_node_is_done_with_the_last_frame_and_its_output_arrived():
    here = {BAG[-1]: object()}
    assert node_settled(DONE, BAG[-1], here, here)
    # still working: busy, an older newest frame (the last one not taken yet), an output waiting for depth
    for not_yet in ({"worker_idle": "False"}, {"newest_stamp_ns": str(BAG[-2])}, {"outputs_pending": "1"}):
        assert not node_settled({**DONE, **not_yet}, BAG[-1], here, here), not_yet
    assert not node_settled(DONE, BAG[-1], {}, {})  # its last output is published but not here yet
    assert not node_settled(DONE, BAG[-1], here, {})  # the objects message, not yet the mask
    assert not node_settled({"frames_live": "3"}, BAG[-1], here, here)  # a node that does not report it


def test_done_without_an_output_of_the_last_frame_fails_the_check():
    """A node that settled having dropped the last frame: waiting ends, and the check still fails."""
    header = SimpleNamespace(frame_id="camera", stamp=ns_to_stamp(BAG[-2]))
    here = {BAG[-2]: SimpleNamespace(header=header, objects=[SimpleNamespace(track_id=1, query=QUERY)])}
    assert node_settled({**DONE, "last_output_stamp_ns": str(BAG[-2])}, BAG[-1], here, here)
    reply = SimpleNamespace(success=True, window_frames=20, sampled_indices=sample_indices(20, 5),
                            sampled_stamps=[ns_to_stamp(BAG[i]) for i in sample_indices(20, 5)], track_id=1)
    result = ReplayResult(reply=reply, camera_headers={s: None for s in BAG}, objects=dict(here),
                          masks=dict(here), node_counts={"images_received": 60, "frames_live": 1,
                                                         "frames_dropped_stale": 60})
    problems = check_replay(result, BAG, "camera", [1, 0, 0, 0, 1, 0], {})
    assert "the last frame has no output: the node never caught up with the stream" in problems


# The last played frames may never reach the node (best effort, depth 2: DDS may lose any frame, the last too).
def _report(newest: int, received: int, last_out: int | None = None) -> dict:
    return {"newest_stamp_ns": str(newest), "worker_idle": "True", "outputs_pending": "0",
            "last_output_stamp_ns": str(newest if last_out is None else last_out), "images_received": str(received),
            "frames_live": "5"}


def _outputs(stamps) -> dict:
    return {s: SimpleNamespace(header=SimpleNamespace(frame_id="camera", stamp=ns_to_stamp(s)),
                               objects=[SimpleNamespace(track_id=1, query=QUERY)]) for s in stamps}


def test_the_harness_settles_on_the_last_frame_the_node_received_once_no_more_arrive():
    """The last played frame never arrived: the node's quiet reports after the player ended settle it on its
    newest frame (the old harness waited for the last played frame and timed out)."""
    here = _outputs(BAG[-3:-1])
    end = 100.0
    quiet = [(end + 1.5, _report(BAG[-2], 59)), (end + 2.5, _report(BAG[-2], 59))]
    assert settled_report(quiet, BAG[-1], end, here, here) == (BAG[-2], {"images_received": 59, "frames_live": 5})
    # not yet: one quiet report only, a report too soon after the player ended, a frame still arriving, busy
    assert settled_report(quiet[-1:], BAG[-1], end, here, here) is None
    assert settled_report([(end + 0.5, _report(BAG[-2], 59)), quiet[1]], BAG[-1], end, here, here) is None
    assert settled_report([(end + 1.5, _report(BAG[-3], 58)), quiet[1]], BAG[-1], end, here, here) is None
    busy = {**_report(BAG[-2], 59), "worker_idle": "False"}
    assert settled_report([quiet[0], (end + 2.5, busy)], BAG[-1], end, here, here) is None
    assert settled_report(quiet, BAG[-1], end, here, {}) is None  # its last mask is not here yet
    # the last played frame did arrive and is done: settled at once, as before
    assert settled_report([(end + 0.1, _report(BAG[-1], 60))], BAG[-1], end, _outputs(BAG[-1:]),
                          _outputs(BAG[-1:])) == (BAG[-1], {"images_received": 60, "frames_live": 5})


def _tracked_result(newest: int, received: int, outputs: list[int]) -> ReplayResult:
    reply = SimpleNamespace(success=True, window_frames=20, sampled_indices=sample_indices(20, 5),
                            sampled_stamps=[ns_to_stamp(BAG[i]) for i in sample_indices(20, 5)], track_id=1)
    here = _outputs(outputs)
    return ReplayResult(reply=reply, camera_headers={s: None for s in BAG}, objects=dict(here), masks=dict(here),
                        node_counts={"images_received": received, "frames_live": 5}, node_newest=newest)


def _last_frame_problems(result: ReplayResult) -> list[str]:
    return [p for p in check_replay(result, BAG, "camera", [1, 0, 0, 0, 1, 0], {})
            if "last frame" in p or "after the node's newest" in p]


def test_the_last_frame_the_node_received_must_have_its_output():
    # the last played frame never arrived; the node output every frame it got: nothing to report
    assert _last_frame_problems(_tracked_result(BAG[-2], 59, BAG[20:-1])) == []
    # the node got the last played frame too (60 received) but says its newest is the one before: caught
    assert _last_frame_problems(_tracked_result(BAG[-2], 60, BAG[20:-1]))
    # the last frame the node received has no output: the rule still holds for it
    problems = _last_frame_problems(_tracked_result(BAG[-2], 59, BAG[20:-2]))
    assert problems == ["the last frame the node received has no output: it never caught up with the stream"]
    # every frame received, the last without output: as before
    assert _last_frame_problems(_tracked_result(BAG[-1], 60, BAG[20:-1])) == [
        "the last frame has no output: the node never caught up with the stream"]
