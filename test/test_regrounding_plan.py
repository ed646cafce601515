"""The re-grounding schedule on frame stamps: due after reground_after_sec, backoff, give up, found, disabled."""

from __future__ import annotations

import pytest

from sa2va_i_ros.runtime.regrounding import NS, RegroundPlan, RegroundSettings

T0 = 1_700_000_000 * NS


def at(seconds: float) -> int:
    return T0 + round(seconds * NS)


def test_nothing_is_due_before_reground_after_sec():
    plan = RegroundPlan(RegroundSettings(after_sec=1.5, max_attempts=3, backoff=2.0))
    plan.lost(4, at(0))
    assert plan.due(at(1.49)) == []
    assert plan.due(at(1.5)) == [4]


def test_backoff_then_give_up_exactly_once():
    plan = RegroundPlan(RegroundSettings(after_sec=1.0, max_attempts=3, backoff=2.0))
    plan.lost(1, at(0))
    assert plan.start(1) == 1 and plan.due(at(1.0)) == []  # an attempt in progress is not due again
    assert plan.missed(1, at(1.2)) is False
    assert plan.due(at(1.2 + 1.99)) == [] and plan.due(at(3.2)) == [1]  # waited 1 s x 2
    assert plan.start(1) == 2 and plan.missed(1, at(3.5)) is False
    assert plan.due(at(3.5 + 3.99)) == [] and plan.due(at(7.5)) == [1]  # 1 s x 4
    assert plan.start(1) == 3 and plan.missed(1, at(8.0)) is True  # the third miss: gave up
    assert plan.due(at(1000)) == [] and plan.attempts(1) == 3 and plan.is_lost(1)


def test_found_or_removed_leaves_the_schedule_and_a_new_loss_starts_over():
    plan = RegroundPlan(RegroundSettings(after_sec=1.0, max_attempts=2))
    plan.lost(1, at(0))
    plan.lost(2, at(0.5))
    plan.found(1)
    plan.removed(2)
    assert plan.due(at(100)) == []
    plan.lost(1, at(10))
    assert plan.due(at(11)) == [1] and plan.attempts(1) == 0
    plan.start(1)
    plan.found(1)  # found while the attempt ran: its miss counts for nothing
    assert plan.missed(1, at(12)) is False and plan.due(at(100)) == []


def test_most_overdue_first_and_abandon_does_not_count():
    plan = RegroundPlan(RegroundSettings(after_sec=1.0, max_attempts=1))
    plan.lost(7, at(2))
    plan.lost(3, at(1))
    assert plan.due(at(5)) == [3, 7]
    plan.start(3)
    plan.abandon(3)
    assert plan.due(at(5)) == [3, 7] and plan.attempts(3) == 0


def test_zero_disables():
    plan = RegroundPlan(RegroundSettings(after_sec=0.0))
    plan.lost(1, at(0))
    assert plan.due(at(1e6)) == []
    plan.configure(RegroundSettings(after_sec=1.0))  # turned on live: the lost track is now scheduled
    assert plan.due(at(1.0)) == [1]


@pytest.mark.parametrize("kwargs", [{"after_sec": -1}, {"after_sec": float("inf")}, {"max_attempts": 0},
                                    {"backoff": 0.5}, {"window_sec": 0}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        RegroundSettings(**kwargs)
