"""``check_replay``'s window rule, on made-up replies: the node's window may lack only frames it never received.

With production image QoS (best effort, depth 2) a loaded node misses camera
frames; its buffered window is then the bag's frames less those. The check must
accept exactly that and still catch a window that does not match the bag.
"""

from types import SimpleNamespace

from sa2va_i_ros.core.sampling import sample_indices
from sa2va_i_ros.ros.conversions import ns_to_stamp
from sa2va_i_ros.tools.replay_run import ReplayResult, check_replay

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
