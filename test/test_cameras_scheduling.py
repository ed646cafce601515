"""Several cameras, one model, on the simulated clock at desktop-GPU and Jetson timings.

``CameraWorkers`` drives one perception worker per camera from one thread; the
simulation (``testing/simulation/cameras.py``) delivers each camera's frames at
its own rate and records each camera's outputs. What is checked: the cameras
share the model fairly, a stalled camera costs the others nothing, each camera
keeps its own rate, requests touch only the cameras they name, groundings run
one at a time in submission order, and a grounding on one camera leaves the
other's output gap bounded by one unit of work of each.
"""

from __future__ import annotations

import pytest

from sa2va_i_ros.testing.simulation import DESKTOP_GPU, JETSON
from sa2va_i_ros.testing.simulation.cameras import Camera, CameraSimulation

PROFILES = pytest.mark.parametrize("profile", [DESKTOP_GPU, JETSON], ids=lambda p: p.name)
HEAD, WRIST = "head", "wrist"


def two_cameras(profile, wrist: Camera | None = None, head: Camera | None = None) -> CameraSimulation:
    return CameraSimulation(profile, {HEAD: head or Camera(30), WRIST: wrist or Camera(30, start=0.013)})


def joined_at(req) -> float:
    assert req.done, "the request never joined"
    return req.done[0][0]


@PROFILES
def test_two_cameras_at_30_hz_share_the_model_fairly(profile):
    sim = two_cameras(profile)
    req = sim.request(1.0, "the cup", "*")
    sim.run(40.0)
    start = joined_at(req) + 1.0
    rates = [sim.rate(c, start, 40.0) for c in (HEAD, WRIST)]
    assert min(rates) / max(rates) >= 0.8, rates
    one = CameraSimulation(profile, {HEAD: Camera(30)})
    alone = one.request(1.0, "the cup")
    one.run(40.0)
    single = one.rate(HEAD, joined_at(alone) + 1.0, 40.0)
    assert min(rates) >= 0.45 * single, (rates, single)  # two cameras on one model: about half each


@PROFILES
def test_a_stalled_camera_does_not_lower_the_other_cameras_rate(profile):
    """Both tracked, then the wrist camera sends nothing: the head camera runs as if it were alone."""
    sim = two_cameras(profile, wrist=Camera(30, stalls=((25.0, 60.0),), start=0.013))
    req = sim.request(1.0, "the cup", "*")
    one = CameraSimulation(profile, {HEAD: Camera(30)})
    one.request(1.0, "the cup")
    sim.run(60.0)
    one.run(60.0)
    assert joined_at(req) < 25.0
    assert sim.rate(WRIST, 26.0, 60.0) == 0
    assert sim.rate(HEAD, 26.0, 60.0) >= 0.97 * one.rate(HEAD, 26.0, 60.0)
    assert sim.rate(HEAD, 26.0, 60.0) > 1.5 * sim.rate(HEAD, joined_at(req) + 1.0, 24.0)  # it had shared


def test_each_camera_keeps_its_own_rate():
    """A 30-Hz head camera and a 5-Hz wrist camera: the wrist is served at 5 Hz, the head takes the rest."""
    sim = two_cameras(DESKTOP_GPU, wrist=Camera(5, start=0.013))
    req = sim.request(1.0, "the cup", "*")
    sim.run(30.0)
    start = joined_at(req) + 1.0
    assert sim.rate(WRIST, start, 30.0) >= 0.95 * 5
    live = DESKTOP_GPU.live_s(1) + DESKTOP_GPU.publish_s
    head_capacity = (1.0 - 5 * live) / live  # what one model leaves the head camera
    assert sim.rate(HEAD, start, 30.0) >= 0.9 * min(30.0, head_capacity)


@PROFILES
def test_a_camera_specific_query_touches_only_its_camera(profile):
    sim = two_cameras(profile)
    req = sim.request(1.0, "the cup", WRIST)
    sim.run(15.0)
    (_t, replies), = req.replies
    assert list(replies) == [WRIST] and replies[WRIST].success
    assert sim.outputs[HEAD] == [] and sim.workers[HEAD].session.tracker.object_ids == []
    assert sim.outputs[WRIST] and all(o.track_ids == tuple(replies[WRIST].track_ids)
                                      for o in sim.outputs[WRIST])
    assert sim.workers[HEAD].counts_now()["requests"] == 0


@PROFILES
def test_a_query_for_every_camera_is_answered_once_for_both_with_unique_track_ids(profile):
    sim = two_cameras(profile)
    req = sim.request(1.0, "the cup", "*")
    sim.run(30.0)
    assert len(req.replies) == 1 and len(req.done) == 1
    replies = req.replies[0][1]
    assert list(replies) == [HEAD, WRIST] and all(r.success for r in replies.values())
    ids = [i for r in replies.values() for i in r.track_ids]
    assert len(ids) == len(set(ids)) == 2
    for camera in (HEAD, WRIST):
        assert {i for o in sim.outputs[camera] for i in o.track_ids} == set(replies[camera].track_ids)


def test_an_unknown_camera_is_answered_at_once_with_the_cameras():
    sim = two_cameras(DESKTOP_GPU)
    req = sim.request(1.0, "the cup", "left_arm")
    sim.run(1.5)
    (t, replies), = req.replies
    assert t == 1.0 and not replies["left_arm"].success
    assert "unknown camera 'left_arm' (cameras: head, wrist)" in replies["left_arm"].message
    assert req.done == req.replies


@PROFILES
def test_groundings_on_two_cameras_run_one_at_a_time_in_submission_order(profile):
    sim = two_cameras(profile)
    wrist = sim.request(1.0, "the bowl", WRIST)
    head = sim.request(1.2, "the cup", HEAD)
    sim.run(40.0)
    w = sim.workers[WRIST].records[0]
    h = sim.workers[HEAD].records[0]
    assert w.success and h.success
    assert w.started == 1.0  # the wrist's came first
    assert h.started >= w.joined  # the head's waited until the wrist's joined its camera's stream
    assert joined_at(head) > joined_at(wrist)


@PROFILES
def test_a_grounding_on_one_camera_leaves_the_other_cameras_gap_bounded(profile):
    """Head tracked, then the wrist camera grounds: between two head outputs, at most one head live step
    and one unit of the wrist's (its grounding steps are bounded)."""
    sim = two_cameras(profile)
    head = sim.request(1.0, "the cup", HEAD)
    sim.run(12.0)
    wrist = sim.request(12.0, "the bowl", WRIST)
    sim.run(45.0)
    start, end = 12.0, joined_at(wrist)
    assert joined_at(head) < start < end
    bound = 2 * sim.longest_step() + profile.publish_s
    assert sim.max_gap(HEAD, start, end) <= bound + 1e-9
    assert sim.longest_step("background") <= 2 * profile.track_s + 1e-9  # each grounding step is bounded


@PROFILES
def test_stopping_a_track_on_one_camera_leaves_the_other_cameras_track(profile):
    sim = two_cameras(profile)
    req = sim.request(1.0, "the cup", "*")
    sim.run(25.0)
    replies = req.replies[0][1]
    head_id, wrist_id = replies[HEAD].track_ids[0], replies[WRIST].track_ids[0]
    sim.stop(25.0, wrist_id)
    sim.run(30.0)
    assert [(e.track_id, e.kind) for e in sim.events[WRIST] if e.kind == "stopped"] == [(wrist_id, "stopped")]
    assert not [e for e in sim.events[HEAD] if e.kind == "stopped"]
    assert sim.rate(WRIST, 25.5, 30.0) == 0
    assert sim.rate(HEAD, 25.5, 30.0) > 0 and all(o.track_ids == (head_id,) for o in sim.outputs[HEAD])
    sim.stop(30.0, 0, "*")  # every track of every camera
    sim.run(32.0)
    assert [(e.track_id, e.kind) for e in sim.events[HEAD] if e.kind == "stopped"] == [(head_id, "stopped")]
