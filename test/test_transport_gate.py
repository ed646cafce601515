"""image_transport 'both': the first copy of a camera frame wins, a failed copy hides nothing, memory is bounded."""

import threading

import pytest

from sa2va_i_ros.runtime.transport_gate import TransportGate


def test_second_copy_of_a_stamp_is_skipped():
    gate = TransportGate()
    assert not gate.taken(100)
    gate.take(100)
    assert gate.taken(100) and gate.skipped == 1
    assert not gate.taken(101)


def test_a_copy_that_failed_to_decode_does_not_hide_the_other():
    gate = TransportGate()
    assert not gate.taken(5)  # the compressed copy arrives first, fails to decode: never taken
    assert not gate.taken(5)  # so the raw copy is still used


def test_only_the_last_keep_stamps_are_remembered():
    gate = TransportGate(keep=3)
    for s in range(10):
        gate.take(s)
    assert [gate.taken(s) for s in range(10)] == [False] * 7 + [True] * 3
    gate.clear()
    assert not gate.taken(9)
    with pytest.raises(ValueError):
        TransportGate(keep=0)


def test_a_stamp_sent_again_later_is_not_a_copy():
    """A bag played in a loop sends the same stamps again a loop later: they must reach the buffer (whose stamp
    gate recognises the restarted clock), not be skipped as copies."""
    now = [0.0]
    gate = TransportGate(max_age_s=1.0, clock=lambda: now[0])
    gate.take(100)
    now[0] = 0.01
    assert gate.taken(100)  # the other transport's copy, milliseconds later
    now[0] = 5.0
    assert not gate.taken(100)  # the next loop
    gate.take(100)
    assert gate.taken(100) and len(gate._order) == 1


def test_concurrent_takes_keep_the_bound():
    gate = TransportGate(keep=50)

    def worker(offset):
        for s in range(offset, offset + 1000):
            gate.take(s)

    threads = [threading.Thread(target=worker, args=(k * 500,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(gate._taken) == len(gate._order) <= 50
