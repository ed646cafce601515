"""Frame sampling pinned to Sa2VA-i's numbers."""

import pytest

from sa2va_i_ros.model.sampling import sample_indices, unique_in_order


def test_uniform_matches_sa2va_i_reference_numbers():
    assert sample_indices(37, 12) == [0, 3, 6, 9, 13, 16, 19, 22, 26, 29, 32, 36]


def test_uniform_keeps_duplicates_when_fewer_frames_than_samples():
    idx = sample_indices(10, 12)
    assert idx == [0, 0, 1, 2, 3, 4, 4, 5, 6, 7, 8, 9]
    assert unique_in_order(idx) == list(range(10))


def test_uniform_always_holds_first_and_last_frame():
    for t in (1, 2, 5, 99):
        for n in (1, 2, 5, 12):
            idx = sample_indices(t, n)
            assert len(idx) == n and idx[-1] == (t - 1 if n > 1 else 0) and idx[0] == 0
            assert idx == sorted(idx)


def test_first_sampling_is_the_original_sa2va_rule():
    assert sample_indices(37, 5, "first") == [0, 1, 2, 3, 4]
    assert sample_indices(3, 5, "first") == [0, 1, 2]


@pytest.mark.parametrize("args", [(0, 5, "uniform"), (5, 0, "uniform"), (5, 5, "random")])
def test_bad_arguments_are_refused(args):
    with pytest.raises(ValueError):
        sample_indices(*args)
