"""SaSaSa2VA's five modes pinned to hand-computed lists from the facts file (sa2va-family.md A4).

Notation there: U(i) = int(i*T/100), W = sorted(i mod T), i = 0..99. The
expected lists below are written out by hand (runs of equal values), never
taken from the implementation.
"""

import pytest

from sa2va_i_ros.grounding.sasasa2va import modes
from sa2va_i_ros.grounding.sasasa2va.modes import plan, sampled_indices


def runs(*pairs):
    """[v]*n for each (v, n): hand-written run-length lists."""
    return [v for v, n in pairs for _ in range(n)]


# T = 7: U(i) = int(7i/100) changes at i = 15, 29, 43, 58, 72, 86 (7*15=105, 7*29=203, 7*43=301, ...)
U7 = runs((0, 15), (1, 14), (2, 14), (3, 15), (4, 14), (5, 14), (6, 14))
# T = 7: 100 = 14*7 + 2, so frames 0 and 1 occur 15 times in W, frames 2..6 14 times
W7 = runs((0, 15), (1, 15), (2, 14), (3, 14), (4, 14), (5, 14), (6, 14))
# T = 3: U(i) = int(3i/100) changes at i = 34 (102) and 67 (201); W: 0 occurs 34 times, 1 and 2 33 times
U3 = runs((0, 34), (1, 33), (2, 33))


def test_uniform_and_wrap_indices_match_the_formulas_written_out():
    assert sampled_indices(7, "uniform") == U7
    assert sampled_indices(7, "uniform_plus") == U7
    assert sampled_indices(7, "wrap_around") == W7
    assert sampled_indices(7, "wrap_around_plus") == W7
    assert sampled_indices(3, "uniform") == U3 == sampled_indices(3, "wrap_around")
    assert sampled_indices(1, "uniform") == [0] * 100


def test_indices_agree_with_the_float_formula_of_the_official_code():
    """int(i * T / 100) in floating point, as the official list comprehension computes it."""
    for t in (1, 2, 3, 7, 37, 99, 100, 101, 150, 333, 1000, 4321):
        assert sampled_indices(t, "uniform") == [int(i * t / 100) for i in range(100)]
        expected_w = sorted(i % t for i in range(100))
        assert sampled_indices(t, "wrap_around") == expected_w


def test_long_videos_wrap_around_samples_the_first_hundred_frames():
    assert sampled_indices(150, "wrap_around") == list(range(100))
    # wrap_around_plus switches to U above 100 frames: U(i) = int(1.5 i) = 0, 1, 3, 4, 6, ...
    s = sampled_indices(150, "wrap_around_plus")
    assert s[:8] == [0, 1, 3, 4, 6, 7, 9, 10] and s[-1] == 148
    assert sampled_indices(100, "wrap_around_plus") == list(range(100)) == sampled_indices(100, "uniform")


def test_uniform_decodes_every_frame_with_clip_10f_over_t():
    p = plan(7, "uniform")
    # 10f // 7 for f = 0..6: 0, 1, 2, 4, 5, 7, 8
    assert p.positions == ((0, 0), (1, 1), (2, 2), (3, 4), (4, 5), (5, 7), (6, 8))
    assert not p.propagate and not p.averaged
    long = plan(150, "uniform")  # 10f // 150 = f // 15
    assert [c for _, c in long.positions] == runs(*[(c, 15) for c in range(10)])
    assert [f for f, _ in long.positions] == list(range(150)) and not long.propagate


def test_a_hundred_frames_use_clip_f_over_10_in_every_mode():
    for mode in modes.MODES:
        q = list(range(99, -1, -1)) if mode == "q_frame" else None
        p = plan(100, mode, q)
        assert p.positions == tuple((f, f // 10) for f in range(100)) and not p.propagate


def test_wrap_around_short_video_uses_the_first_clip_holding_the_frame():
    p = plan(7, "wrap_around")
    # first index of frame f in W7: 0, 15, 30, 44, 58, 72, 86 -> clips 0, 1, 3, 4, 5, 7, 8
    assert p.positions == ((0, 0), (1, 1), (2, 3), (3, 4), (4, 5), (5, 7), (6, 8))
    assert plan(7, "wrap_around_plus").positions == p.positions
    assert not p.propagate and not p.averaged


def test_uniform_plus_short_video_decodes_every_position_and_averages():
    p = plan(3, "uniform_plus")
    assert len(p.positions) == 100 and p.averaged and not p.propagate
    assert [f for f, _ in p.positions] == U3 and [c for _, c in p.positions] == runs(*[(c, 10) for c in range(10)])
    # frame 0 = positions 0..33: clips 0, 1, 2 ten times each and clip 3 four times
    assert [p.positions[k][1] for k in p.positions_of(0)] == runs((0, 10), (1, 10), (2, 10), (3, 4))
    # frame 1 = positions 34..66: clip 3 six times, 4 and 5 ten times, 6 seven times
    assert [p.positions[k][1] for k in p.positions_of(1)] == runs((3, 6), (4, 10), (5, 10), (6, 7))
    assert [p.positions[k][1] for k in p.positions_of(2)] == runs((6, 3), (7, 10), (8, 10), (9, 10))


def test_uniform_plus_long_video_is_uniform():
    assert plan(150, "uniform_plus").positions == plan(150, "uniform").positions
    assert plan(150, "wrap_around_plus").positions == plan(150, "uniform").positions


def test_q_frame_short_video_averages_over_the_given_selection():
    q = runs((2, 40), (0, 30), (1, 30))  # any order is used as given
    p = plan(3, "q_frame", q)
    assert p.sampled == tuple(q) and p.averaged and not p.propagate
    assert [p.positions[k][1] for k in p.positions_of(2)] == runs((0, 10), (1, 10), (2, 10), (3, 10))
    assert [p.positions[k][1] for k in p.positions_of(0)] == runs((4, 10), (5, 10), (6, 10))


def test_q_frame_missing_a_frame_is_an_error_not_nan():
    with pytest.raises(ValueError, match=r"miss frame\(s\) \[1\]"):
        plan(3, "q_frame", runs((0, 50), (2, 50)))


@pytest.mark.parametrize("mode", ["q_frame", "wrap_around"])
def test_long_videos_prompt_frames_0_to_99_and_propagate(mode):
    q = list(range(0, 200, 2)) if mode == "q_frame" else None
    p = plan(200, mode, q)
    assert p.positions == tuple((f, f // 10) for f in range(100)) and p.propagate
    if mode == "q_frame":
        assert p.sampled == tuple(range(0, 200, 2))  # the language model sees the selection ...
    else:
        assert p.sampled == tuple(range(100))


@pytest.mark.parametrize("args, message", [
    ((5, "selective_averaging"), "unknown SaSaSa2VA mode"),
    ((0, "uniform"), "at least one frame"),
    ((5, "q_frame"), "needs 100 frame indices"),
    ((5, "q_frame", [0] * 99), "exactly 100"),
    ((5, "q_frame", [5] * 100), "frames of the 5-frame video"),
])
def test_bad_arguments_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        plan(*args)


# -- the node's seed frames: S[90..99] and the newest frame, where the plan decodes them ------------------------
@pytest.mark.parametrize("t, mode, expected", [
    (7, "uniform", [6]),  # U7[90..99] are all 6 (the run of 6 starts at 86)
    (7, "uniform_plus", [6]),
    (7, "wrap_around", [6]),  # W7[90..99] are all 6 (the run of 6 starts at 86)
    (7, "wrap_around_plus", [6]),
    (3, "wrap_around", [2]),
    (1, "uniform", [0]),
    (100, "uniform", list(range(90, 100))),
    # U(i) = int(1.03 i) for i = 90..99: 92.7, 93.73, ..., 101.97; the newest frame 102 is decoded too
    (103, "uniform", list(range(92, 103))),
    (103, "wrap_around_plus", list(range(92, 103))),
    # U(i) = int(1.5 i) for i = 90..99 and the newest frame 149
    (150, "uniform", [135, 136, 138, 139, 141, 142, 144, 145, 147, 148, 149]),
    # T > 100: frames 0..99 are decoded, the newest is reached by propagation and is no seed
    (150, "wrap_around", list(range(90, 100))),
])
def test_seed_frames_are_the_last_clip_and_the_newest_frame_when_decoded(t, mode, expected):
    assert modes.seed_frames(plan(t, mode)) == expected


def test_q_frame_is_not_a_streaming_mode():
    assert modes.STREAMING_MODES == ("uniform", "uniform_plus", "wrap_around", "wrap_around_plus")
