"""The perception worker on a simulated clock at desktop-GPU and Jetson timings (sa2va_i_ros/testing/simulation).

The real worker and session schedule; stand-ins for the engine and the tracker
only spend simulated time (profiles.py). Every scenario checks the stream's
invariants (no stamp published twice, stamps in order, nothing of a track
after its STOPPED), and its own bounds:

* a new object's first live output comes at most ``max_catch_up_sec`` plus
  one camera period after its grounding ended (the catch-up's budget);
* a tracked object's largest output gap while a new query is served is at
  most one live step, a quarter of one (``TURN_SHARE``), the longest
  background step and one camera period (the worker alternates live steps
  with turns of background work);
* queues, the buffer and the worker's bookkeeping stay bounded.
"""

from __future__ import annotations

import time

import pytest

from sa2va_i_ros.runtime.session import Settings
from sa2va_i_ros.runtime.worker import TURN_SHARE
from sa2va_i_ros.testing.simulation import DESKTOP_GPU, JETSON, Simulation

PROFILES = {"desktop_gpu": DESKTOP_GPU, "jetson": JETSON}
STEP = dict(prefill_chunk_tokens=128, vision_frames_per_step=1)  # the node's defaults


def check_stream(sim: Simulation) -> None:
    stamps = [o.stamp_ns for o in sim.outputs]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps), "outputs out of order or repeated"
    stopped = {e.track_id: e.time for e in sim.events if e.kind == "stopped"}
    for o in sim.outputs:
        assert not any(t in stopped and o.time > stopped[t] for t in o.track_ids), "output after STOPPED"
    for track_id in {e.track_id for e in sim.events}:
        kinds = [e.kind for e in sim.events if e.track_id == track_id]
        assert kinds[0] == "started" and kinds.count("started") == 1 and kinds.count("stopped") <= 1
        assert "stopped" not in kinds[:-1]  # nothing after STOPPED
    for track_id, processed in sim.tracker.processed.items():
        assert len(processed) == len(set(processed)), f"track {track_id} processed a frame twice"


def check_joined_in_budget(sim: Simulation, req, budget: float) -> None:
    record = req.ticket.record
    assert req.reply is not None and req.reply.success, req.reply
    assert record.first_live is not None, "never joined the live stream"
    assert record.first_live - record.seeded <= budget + sim.period + 1e-9
    assert 0 <= sim.join_live_s(req) <= budget + sim.period + 1e-9


@pytest.mark.parametrize("hz", [15, 30, 60])
@pytest.mark.parametrize("profile", PROFILES)
def test_one_track_joins_the_live_stream_within_its_budget(profile, hz):
    sim = Simulation(PROFILES[profile], hz, Settings(**STEP))
    req = sim.request(5.0, "the cup")
    sim.run(10.0)
    check_stream(sim)
    check_joined_in_budget(sim, req, 1.0)
    track = req.reply.track_id
    after = [o for o in sim.outputs if o.time > req.ticket.record.first_live]
    assert after and all(track in o.track_ids for o in after)
    live_step = PROFILES[profile].track_s
    assert sim.max_gap(track, req.ticket.record.first_live, 10.0) <= max(sim.period, live_step) + live_step + 1e-9


@pytest.mark.parametrize("profile, hz", [("desktop_gpu", 15), ("jetson", 5)])
def test_with_time_to_spare_every_frame_is_tracked(profile, hz):
    """A budget that fits and a tracker faster than the camera: the catch-up tracks every frame from the first
    prompted one to the live stream, as offline propagation does."""
    sim = Simulation(PROFILES[profile], hz, Settings(max_catch_up_sec=60.0, **STEP), buffer_frames=60)
    req = sim.request(60 / hz, "the cup")
    sim.run(60 / hz + 60.0)
    check_stream(sim)
    record = req.ticket.record
    assert record.first_live is not None and record.skipped == 0 and sim.worker.counts["frames_thinned"] == 0
    processed = sim.tracker.processed[req.reply.track_id]
    sent = [round(k / hz * 1e9) for k in range(sim.frames_sent)]
    first = sent.index(processed[0])
    assert processed == sent[first:first + len(processed)]  # consecutive: no frame skipped, none repeated


@pytest.mark.parametrize("profile", PROFILES)
def test_several_tracks_and_a_query_while_two_objects_are_tracked(profile):
    p = PROFILES[profile]
    sim = Simulation(p, 30, Settings(**STEP))
    g = p.grounding_s()  # with live steps in between, a grounding takes up to about twice as long
    a, b = sim.request(3.0, "the cup"), sim.request(6.0 + 3 * g, "the bowl")
    c = sim.request(9.0 + 7 * g, "the red box")
    sim.run(12.0 + 11 * g)
    check_stream(sim)
    for req in (a, b, c):
        check_joined_in_budget(sim, req, 1.0)
    final = sim.outputs[-1].track_ids
    assert sorted(final) == sorted(r.reply.track_id for r in (a, b, c))
    # while 'the red box' is grounded and catches up, the two tracked objects keep their outputs coming
    start, end = c.ticket.record.submitted, c.ticket.record.first_live
    live = 2 * p.track_s
    bound = live + TURN_SHARE * live + sim.longest_background_step() + sim.period
    for req in (a, b):
        gap = sim.max_gap(req.reply.track_id, start, end)
        assert gap <= bound + 1e-9, (gap, bound)
        assert gap < 3 * (2 * p.track_s) + sim.period  # the goal: under 3 tracker frames (+ arrival)


@pytest.mark.parametrize("profile", PROFILES)
def test_a_burst_of_twenty_requests_is_answered_every_one(profile):
    sim = Simulation(PROFILES[profile], 30, Settings(max_queued_requests=16, **STEP))
    reqs = [sim.request(3.0, f"object {k}", track=False) for k in range(20)]
    sim.run(3.0 + 20 * PROFILES[profile].grounding_s() + 30)
    check_stream(sim)
    assert all(len(r.replies) == 1 for r in reqs)
    busy = [r for r in reqs if r.reply.message.startswith("busy")]
    assert len(busy) == 3 and all(r.replies[0][0] == 3.0 for r in busy)  # answered at once
    served = [r for r in reqs if r.reply.success]
    assert len(served) == 17
    queue_ms = [r.reply.timing_ms["queue"] for r in served]
    assert queue_ms == sorted(queue_ms) and queue_ms[-1] > 15 * PROFILES[profile].grounding_s() * 1e3


@pytest.mark.parametrize("profile", PROFILES)
def test_cancel_during_grounding_leaves_the_tracks_alone(profile):
    p = PROFILES[profile]
    sim = Simulation(p, 30, Settings(**STEP))
    a = sim.request(3.0, "the cup")
    b = sim.request(8.0, "the bowl")
    sim.cancel(8.0 + p.grounding_s() / 2, b)
    sim.run(14.0)
    check_stream(sim)
    assert not b.reply.success and "cancelled" in b.reply.message
    turn = p.track_s * (1 + TURN_SHARE) + sim.longest_background_step()
    assert b.replies[0][0] <= 8.0 + p.grounding_s() / 2 + turn + 1e-9  # at the next step boundary
    assert {e.kind for e in sim.events if e.query == "the bowl"} == set()
    assert sim.outputs[-1].track_ids == (a.reply.track_id,)


@pytest.mark.parametrize("profile", PROFILES)
def test_cleanup_during_a_request_answers_it_and_stops_every_track(profile):
    p = PROFILES[profile]
    sim = Simulation(p, 30, Settings(max_queued_requests=2, **STEP))
    a = sim.request(3.0, "the cup")
    b, c = sim.request(8.0, "the bowl"), sim.request(8.0, "the box")
    sim.close(8.0 + p.grounding_s() / 2)
    sim.run(12.0)
    check_stream(sim)
    for req in (b, c):
        assert not req.reply.success and "cleaned up" in req.reply.message
    stopped = [e for e in sim.events if e.kind == "stopped"]
    assert [e.track_id for e in stopped] == [a.reply.track_id]
    assert all(o.time <= stopped[0].time for o in sim.outputs)


@pytest.mark.parametrize("profile", PROFILES)
def test_camera_stall_and_a_query_during_it(profile):
    sim = Simulation(PROFILES[profile], 30, Settings(**STEP), stalls=((8.0, 11.0),))
    a = sim.request(3.0, "the cup")
    b = sim.request(9.0, "the bowl")  # grounds on the frames before the stall
    sim.run(16.0)
    check_stream(sim)
    assert a.reply.success and b.reply.success
    resumed = [o for o in sim.outputs if o.time > 11.0]
    assert resumed and set(resumed[-1].track_ids) == {a.reply.track_id, b.reply.track_id}
    # the first frames after the stall jump 3 s: held until three consistent frames confirm the jump
    assert resumed[0].stamp_ns >= round(11.0 * 1e9)


def test_lost_and_found_during_a_catch_up_are_published_in_order():
    def scene(track_id, stamp_ns):  # the object is out of sight from 2.0 s to 2.5 s (inside the window)
        return 0.1 if 2.0e9 <= stamp_ns < 2.5e9 else 0.9

    sim = Simulation(DESKTOP_GPU, 15, Settings(lost_after_frames=3, max_catch_up_sec=60.0, **STEP), scene=scene)
    req = sim.request(4.0, "the cup")
    sim.run(12.0)
    check_stream(sim)
    kinds = [(e.kind, e.stamp_ns) for e in sim.events]
    assert [k for k, _ in kinds] == ["started", "lost", "found"]
    assert 2.0e9 <= kinds[1][1] < 2.5e9 and kinds[2][1] >= 2.5e9  # on their own frames, after STARTED
    assert all(e.time == req.replies[0][0] for e in sim.events)  # published with the answer


def test_camera_faster_than_the_tracker_for_ten_minutes():
    """Jetson, two objects (240 ms per frame), a 60 Hz camera: the newest frame is always taken, the rest
    dropped and counted; nothing grows."""
    t0 = time.perf_counter()
    sim = Simulation(JETSON, 60, Settings(**STEP))
    a, b = sim.request(3.0, "the cup"), sim.request(10.0, "the bowl")
    sim.run(600.0)
    check_stream(sim)
    counts = sim.worker.counts
    assert a.reply.success and b.reply.success
    live_step = 2 * JETSON.track_s
    assert counts["frames_live"] >= 0.95 * (600.0 - 20.0) / live_step
    assert counts["frames_dropped_stale"] > 0.8 * counts["frames_in"]
    assert sim.max_inbox <= live_step * 60 + 2  # what arrives during one step, never more
    assert len(sim.session.buffer) <= 300 and sim.worker.queue_length() == 0
    assert len(sim.worker.records) <= 100
    assert sim.max_gap(a.reply.track_id, 20.0, 600.0) <= live_step + 1 / 60 + 1e-9
    assert time.perf_counter() - t0 < 60  # ten simulated minutes, quickly (a loose guard, not a measurement)
