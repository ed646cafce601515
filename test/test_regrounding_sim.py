"""Automatic re-grounding in the perception worker, on the simulated clock at desktop-GPU and Jetson timings.

The real ``PerceptionWorker``, ``Session`` and re-grounding schedule run; the
stand-ins (sa2va_i_ros/testing/simulation) only spend simulated time. The scene models
SAM2's weakness that re-grounding exists for: once the object was out of view
after a seeding, that seeding never sees it again (its presence score stays
low), while a new seeding after the object came back sees it. The stand-in
model finds the object when it is in view as the grounding starts (the newest
frame of its window) and answers an empty mask otherwise.

Scenarios: the object leaves and returns (found again under the same id, the
other tracked object's outputs keep coming); it never returns (attempts at
the backoff's waits, then ``gave_up`` once); a user request arriving while a
re-grounding is still grounding goes first (the pre-empted attempt does not
count as a miss).
"""

from __future__ import annotations

import pytest
from test_simulation import PROFILES, STEP, check_stream

from sa2va_i_ros.runtime.session import Settings
from sa2va_i_ros.runtime.worker import INTERNAL, TURN_SHARE
from sa2va_i_ros.runtime.worker.job import Phase
from sa2va_i_ros.testing.simulation import Simulation

CUP, BOWL = "the cup", "the bowl"
NS = 1e9


class Scene:
    """The cup (the first track) is out of view during ``absent`` (seconds); the bowl always in view."""

    def __init__(self, absent: tuple[tuple[float, float], ...]):
        self.absent = absent
        self.seeded: dict = {}  # track key -> stamp (s) of the newest frame it was prompted on

    def present(self, t: float) -> bool:
        return not any(a <= t < b for a, b in self.absent)

    def gone_between(self, t0: float, t1: float) -> bool:
        return any(a <= t1 and b > t0 for a, b in self.absent)

    def score(self, key, stamp_ns: int) -> float:
        track_id = key[0] if isinstance(key, tuple) else key
        if track_id != 1:
            return 0.9
        t, since = stamp_ns / NS, self.seeded.get(key, 0.0)
        return 0.1 if self.gone_between(min(since, t), t) else 0.9

    def finds(self, query: str, now: float) -> bool:
        return query != CUP or self.present(now)


def simulate(profile: str, absent, **settings) -> tuple[Simulation, Scene]:
    scene = Scene(absent)
    settings = {"max_queued_requests": 1, **settings}  # the second request waits for the first
    sim = Simulation(PROFILES[profile], 30, Settings(**STEP, **settings), scene=scene.score)
    sim.engine.finds = scene.finds
    seed = sim.tracker.seed_steps

    def seed_and_note(grounding, *, obj_id):
        prepared = yield from seed(grounding, obj_id=obj_id)
        key = prepared.track.key
        scene.seeded[key] = max(prepared.grounding.stamps[i]["stamp_ns"] for i in prepared.grounding.prompts) / NS
        return prepared

    sim.tracker.seed_steps = seed_and_note
    return sim, scene


def cup_alone(sim: Simulation, until: float) -> int:
    """Ask for the cup at 1 s, run to ``until`` (simulated), check the stream; the cup's track id."""
    cup = sim.request(1.0, CUP)
    sim.run(until)
    check_stream(sim)
    return cup.reply.track_id


def kinds(sim: Simulation, track_id: int) -> list[str]:
    return [e.kind for e in sim.events if e.track_id == track_id]


def event(sim: Simulation, track_id: int, kind: str):
    return next(e for e in sim.events if e.track_id == track_id and e.kind == kind)


def attempts(sim: Simulation, what: str = "attempt") -> list[float]:
    return [stamp / NS for kind, _, stamp in sim.worker.regrounder.log if kind == what]


def gap_bound(sim: Simulation, objects: int) -> float:
    live = objects * sim.profile.track_s
    return live + TURN_SHARE * live + sim.longest_background_step() + sim.period


@pytest.mark.parametrize("profile", PROFILES)
def test_object_leaves_and_returns_and_is_found_again_under_the_same_id(profile):
    leave, back = 16.0, 26.0  # both objects are tracked by then (a Jetson grounds the two until ~14 s)
    sim, scene = simulate(profile, ((leave, back),), reground_after_sec=1.0, reground_max_attempts=5,
                          reground_backoff=2.0)
    cup, bowl = sim.request(1.0, CUP), sim.request(1.5, BOWL)
    sim.run(80.0)
    check_stream(sim)
    a, b = cup.reply.track_id, bowl.reply.track_id
    assert (a, b) == (1, 2)
    assert kinds(sim, a) == ["started", "lost", "regrounded"], [(e.kind, e.time) for e in sim.events]
    assert kinds(sim, b) == ["started"]
    assert {e.track_id for e in sim.events} == {a, b}  # never a new id for the cup
    lost, found = event(sim, a, "lost"), event(sim, a, "regrounded")
    assert leave <= lost.stamp_ns / NS < back and found.stamp_ns / NS >= back
    tried = attempts(sim)
    assert tried[0] >= lost.stamp_ns / NS + 1.0  # not before reground_after_sec (frame stamps)
    assert attempts(sim, "missed") and all(t < back for t in tried[:-1])  # misses while it was away
    assert sim.worker.counts["regrounded"] == 1 and sim.worker.counts["reground_gave_up"] == 0
    # the same id goes on after it, visible: the re-seeded object replaced the lost one
    after = [o for o in sim.outputs if o.stamp_ns > found.stamp_ns]
    assert after and all(a in o.track_ids and b in o.track_ids for o in after)
    assert sim.tracker.is_visible(a) and scene.seeded[(a, 1)] >= back
    # the bowl's outputs keep coming while the cup is re-grounded (interleaved, never blocked)
    for start in tried:
        gap = sim.max_gap(b, start, start + PROFILES[profile].grounding_s() * 2)
        assert gap <= gap_bound(sim, 2) + 1e-9, (gap, gap_bound(sim, 2))


@pytest.mark.parametrize("profile", PROFILES)
def test_object_that_never_returns_is_given_up_after_max_attempts(profile):
    sim, _ = simulate(profile, ((3.0, 1e9),), reground_after_sec=1.0, reground_max_attempts=3,
                      reground_backoff=2.0)
    a = cup_alone(sim, 80.0)
    assert kinds(sim, a) == ["started", "lost", "gave_up"]
    assert sim.worker.counts["reground_attempts"] == 3 and sim.worker.counts["reground_missed"] == 3
    log = [kind for kind, _, _ in sim.worker.regrounder.log]
    assert log == ["attempt", "missed", "attempt", "missed", "attempt", "gave_up"]
    tried, missed = attempts(sim), attempts(sim, "missed")
    period = 1 / 30
    for k, (miss, nxt) in enumerate(zip(missed, tried[1:], strict=False)):  # waits: 1 s x 2, 1 s x 4
        wait = 1.0 * 2.0 ** (k + 1)
        assert wait - 1e-6 <= nxt - miss <= wait + 2 * period + PROFILES[profile].track_s + 1e-9
    gave_up = event(sim, a, "gave_up")
    assert gave_up.time < 60.0  # and nothing was tried after it, for the remaining simulated time
    assert sim.worker.tracks == {a: CUP}  # the track stays: the user decides


@pytest.mark.parametrize("profile", PROFILES)
def test_a_user_request_during_a_regrounding_goes_first(profile):
    """max_attempts 1: had the pre-empted attempt counted, the cup would be given up at once."""
    # no request may wait (the node's default): the re-grounding must not make the user's request busy
    sim, _ = simulate(profile, ((3.0, 5.0),), reground_after_sec=0.5, reground_max_attempts=1,
                      max_queued_requests=0)
    cup = sim.request(1.0, CUP)
    seen: dict = {}

    def probe() -> None:  # the first moment a re-grounding is grounding: the user asks for the bowl
        job = sim.worker.job
        if "bowl" not in seen and job is not None and job.ticket.priority == INTERNAL and job.phase is Phase.GROUNDING:
            seen["at"] = sim.clock.now()
            seen["bowl"] = sim.request(seen["at"], BOWL)

    for k in range(1, 2000):
        sim.at(3.0 + k * 0.005, probe)
    sim.run(60.0)
    check_stream(sim)
    assert "bowl" in seen, "no re-grounding was ever seen grounding"
    bowl, a = seen["bowl"], cup.reply.track_id
    assert bowl.reply is not None and bowl.reply.success, bowl.reply  # not answered busy
    record = bowl.ticket.record
    # it started at the next step boundary: the re-grounding gave way
    assert record.started - seen["at"] <= sim.longest_background_step() + 2 * PROFILES[profile].track_s + 1e-9
    assert sim.worker.counts["reground_deferred"] >= 1
    assert kinds(sim, a) == ["started", "lost", "regrounded"]
    assert "gave_up" not in [e.kind for e in sim.events]
    regrounded = event(sim, a, "regrounded")
    assert regrounded.time > record.joined  # the re-grounding ran again once the user's request was served
    assert kinds(sim, bowl.reply.track_id) == ["started"]


def test_disabled_never_regrounds():
    sim, _ = simulate("desktop_gpu", ((3.0, 5.0),), reground_after_sec=0.0)
    assert kinds(sim, cup_alone(sim, 20.0)) == ["started", "lost"]
    assert sim.worker.counts["reground_attempts"] == 0 and sim.worker.regrounder.log == []


def test_stopping_a_track_during_its_regrounding_ends_it_without_a_trace():
    sim, _ = simulate("jetson", ((3.0, 5.0),), reground_after_sec=0.5, reground_max_attempts=3)
    cup = sim.request(1.0, CUP)
    seen: dict = {}

    def probe() -> None:
        job = sim.worker.job
        if "stopped" not in seen and job is not None and job.ticket.priority == INTERNAL:
            seen["stopped"] = sim.clock.now()
            sim.worker.stop(job.ticket.reseed)

    for k in range(1, 4000):
        sim.at(3.0 + k * 0.005, probe)
    sim.run(40.0)
    check_stream(sim)
    a = cup.reply.track_id
    assert "stopped" in seen and kinds(sim, a) == ["started", "lost", "stopped"]
    assert not sim.worker.tracks and not sim.session.tracker.object_ids and not sim.session.queries
    assert sim.worker.counts["regrounded"] == 0
    assert all(o.time <= event(sim, a, "stopped").time for o in sim.outputs)


@pytest.mark.parametrize("profile", PROFILES)
def test_a_mask_on_an_absent_object_is_a_miss_when_the_reseeded_object_is_lost_before_it_joins(profile):
    """The model answers a mask although the cup is away (a false find): the re-seeded object sees nothing
    on the frames after its prompts (the newest frame at least; lost_after_frames 1) and is lost again while it
    catches up, so it does not replace the track."""
    sim, _ = simulate(profile, ((3.0, 1e9),), reground_after_sec=0.5, reground_max_attempts=2,
                          lost_after_frames=1)
    sim.engine.finds = lambda query, now: True
    a = cup_alone(sim, 60.0)
    assert kinds(sim, a) == ["started", "lost", "gave_up"]
    assert sim.worker.counts["reground_attempts"] == 2 and sim.worker.counts["regrounded"] == 0
    assert (a, 2) in sim.tracker.processed  # both re-seeded objects did catch up (and were dropped)
    assert sim.tracker.seeds[a] == 3 and not sim.tracker.is_visible(a)
