"""Device time and several objects, on the simulated clock with the asynchronous device stand-in.

The stand-ins' model calls return at once and charge their device time when
the host waits for it (``testing/simulation/device.py``): an explicit
synchronisation (the worker's, at every step boundary) or a result read back.
A worker that forgot to synchronise would see its background steps as free:
these tests then fail (nothing left queued after a unit of work; a tracked
object's gap bounded by the profile's own step costs). The tracker stand-in is
not linear in the objects: a live step runs the encoder once for all of them,
a catch-up frame once per joining object; the cost model must learn that
shape for the catch-up to meet its budget with 1, 2 and 4 tracked objects.
"""

from __future__ import annotations

import pytest
from test_simulation import PROFILES, STEP, check_joined_in_budget, check_stream

from sa2va_i_ros.runtime.session import Settings
from sa2va_i_ros.runtime.worker import TURN_SHARE
from sa2va_i_ros.testing.simulation import Simulation


def longest_stage_s(p, prompts: int = 5) -> float:
    """The profile's most expensive single unit of background work (a grounding stage, seeding, a catch-up
    frame), with the node's default step sizes."""
    return max(p.preprocess_s, p.vision_s, 128 * p.prefill_s_per_token, p.token_s, p.sam2_encode_s,
               p.seg_decode_s, prompts * p.seed_prompt_s, p.track_s + p.publish_s)


def several(profile: str, k: int, hz: float = 30, **kw) -> tuple[Simulation, list, object]:
    """``k`` objects tracked one after the other, then a new query; returns (sim, tracked requests, new)."""
    p = PROFILES[profile]
    sim = Simulation(p, hz, Settings(max_queued_requests=8, **STEP), **kw)
    g = 4 * p.grounding_s()  # with live steps of up to 4 objects in between, and the catch-up
    tracked = [sim.request(2.0 + g * i, f"object {i}") for i in range(k)]
    new = sim.request(4.0 + g * k, "the new one")
    sim.run(8.0 + g * (k + 1))
    check_stream(sim)
    return sim, tracked, new


@pytest.mark.parametrize("profile", PROFILES)
def test_async_no_device_work_is_left_queued_after_a_unit_of_work(profile):
    """Every unit of work is charged the device time it launched: the worker synchronises before it ends."""
    sim = Simulation(PROFILES[profile], 30, Settings(**STEP))
    sim.request(2.0, "the cup")
    sim.request(6.0, "the bowl")
    run_once, left = sim.worker.run_once, []

    def checked() -> bool:
        did = run_once()
        left.append(sim.device.pending_s)
        return did
    sim.worker.run_once = checked
    sim.run(12.0)
    check_stream(sim)
    assert sim.device.launched_s > 0 and len(left) > 100
    assert max(left) == 0.0, "device work still queued after a unit of work: a missing synchronisation"
    assert sim.worker.device_time.count > 0  # the worker's own synchronisations ran (and were counted)


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("profile", PROFILES)
def test_async_catch_up_meets_its_budget_with_several_tracked_objects(profile, k):
    """k tracked objects, a new query: it joins within max_catch_up_sec + one frame, and the tracked objects'
    largest gap while it is grounded stays under 3 of their live steps (and within one live step, a turn and
    the profile's longest single stage)."""
    p = PROFILES[profile]
    sim, tracked, new = several(profile, k)
    for req in (*tracked, new):
        check_joined_in_budget(sim, req, 1.0)
    rec = new.ticket.record
    live = p.live_s(k) + p.publish_s
    bound = live + TURN_SHARE * live + longest_stage_s(p) + sim.period
    for req in tracked:
        gap = sim.max_gap(req.reply.track_id, rec.submitted, rec.seeded)
        assert gap <= bound + 1e-9, (gap, bound)
        assert gap < 3 * live + sim.period  # the goal: under 3 tracker periods (+ the frame's arrival)
    assert set(sim.outputs[-1].track_ids) == {r.reply.track_id for r in (*tracked, new)}


def test_async_real_size_frames_and_two_objects_in_one_answer():
    """640x480 camera frames, an answer with two [SEG]s (two objects joining together) while one is tracked
    (desktop GPU: on the Jetson profile this does not fit in 1 s, see the warning test)."""
    p = PROFILES["desktop_gpu"]
    sim = Simulation(p, 30, Settings(**STEP), frame_size=(480, 640), buffer_frames=60)
    a = sim.request(2.0, "the cup")
    sim.at(3.0 + 3 * p.grounding_s(), lambda: setattr(sim.engine, "answer", "Sure, [SEG] and [SEG]."))
    b = sim.request(4.0 + 3 * p.grounding_s(), "the two bowls")
    sim.run(8.0 + 6 * p.grounding_s())
    check_stream(sim)
    check_joined_in_budget(sim, b, 1.0)
    assert len(b.reply.track_ids) == 2 and b.reply.objects[0].mask.shape == (480, 640)
    assert set(sim.outputs[-1].track_ids) == {*a.reply.track_ids, *b.reply.track_ids}


def test_async_device_time_synchronises_accelerators_only_and_counts_its_cost():
    import torch

    from sa2va_i_ros.runtime.device_time import DeviceTime, synchronizer
    from sa2va_i_ros.testing.simulation import AsyncDevice, SimClock

    assert synchronizer(torch.device("cpu"), None) is None  # a CPU's calls are synchronous: nothing to wait for
    assert callable(synchronizer(torch.device("cuda", 0)))  # (not called: no CUDA here)
    assert callable(synchronizer("cuda:1")) and synchronizer("cpu") is None
    clock = SimClock()
    a, b = AsyncDevice(clock), AsyncDevice(clock)
    a.launch(0.5)
    b.launch(0.25)
    time = DeviceTime(synchronizer(a, b, a, torch.device("cpu")), clock)
    assert clock.now() == 0.0  # launched, not waited for
    time.sync()
    assert clock.now() == 0.5 and (a.syncs, b.syncs) == (1, 1)  # each device once
    assert time.total_s == 0.5 and time.count == 1


def test_the_cost_model_learns_an_encoder_part_and_a_per_object_part():
    from sa2va_i_ros.runtime.scheduling import CostModel

    encoder, per_object = 0.020, 0.010
    costs = CostModel()
    costs.tracked(encoder + per_object, 1)
    assert costs.step_s(1) == pytest.approx(0.03)
    assert costs.step_s(4) == pytest.approx(0.12)  # one object count seen: proportional, an upper bound
    for n in (1, 2, 3, 1, 2):
        costs.tracked(encoder + per_object * n, n)
    assert costs.step_s(4) == pytest.approx(encoder + 4 * per_object)  # not 4 x 0.03
    assert costs.catch_up_s(2) == pytest.approx(2 * (encoder + per_object))  # a pass per joining object
    costs.caught_up(0.05, 1)
    assert costs.catch_up_s(1) == pytest.approx(0.05)  # measured catch-up frames take over
