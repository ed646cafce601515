"""The perception session and worker without ROS: requests, tracking, gaps, bad input, the request queue.

The worker runs synchronously here (``run_until_idle`` on the test's thread)
with the real tiny engine and tracker, and a simulated clock that never moves:
no step has a measured cost, so no catch-up frame is thinned and the outputs
are exactly the tracker's (timing is the subject of test_simulation.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from frames import NS, frame_rgb, stamp_ns
from test_tracker_helpers import one_torch_thread  # noqa: F401  (autouse: one torch thread on a shared machine)

from sa2va_i_ros.runtime.frame_buffer import FrameBuffer
from sa2va_i_ros.runtime.session import SegmentRequest, Session, Settings
from sa2va_i_ros.runtime.worker import PerceptionWorker
from sa2va_i_ros.runtime.worker.job import Phase
from sa2va_i_ros.testing.simulation import SimClock
from sa2va_i_ros.testing.tiny_sa2va import DEFAULT_ANSWER  # what the tiny checkpoint was built to say
from sa2va_i_ros.tracking import TrackerConfig

QUERY = "the cup left of the bowl"
frame, stamp = frame_rgb, stamp_ns


class Recorder:
    """The worker's emitter: everything published, in order."""

    def __init__(self):
        self.outputs, self.events = [], []

    def output(self, out, frame_):
        self.outputs.append(out)

    def event(self, header, track_id, query, kind, score):
        self.events.append((header["i"] if header else None, track_id, query, kind))


class Driver:
    def __init__(self, engine, buffer=None, settings=None, tracker_config=None):
        self.rec = Recorder()
        buffer = buffer if buffer is not None else FrameBuffer(max_frames=50, max_seconds=30.0)
        self.session = Session(engine, buffer, tracker_config or TrackerConfig(lost_after=3),
                               settings or Settings(max_tracks=3))
        self.worker = PerceptionWorker(self.session, self.rec, SimClock(), threaded=False)

    def feed(self, start, stop, size=(96, 128), run=True):
        """Offer frames one at a time (each processed before the next); returns the outputs they caused."""
        before = len(self.rec.outputs)
        for i in range(start, stop):
            r = self.worker.offer_frame({"i": i}, stamp(i), frame(i, size))
            assert r.push.accepted, r.push.reason
            if run:
                self.worker.run_until_idle()
        return self.rec.outputs[before:]

    def submit(self, req, **kw):
        replies = []
        ticket = self.worker.submit(req, on_reply=replies.append, **kw)
        return ticket, replies

    def segment(self, req):
        ticket, replies = self.submit(req)
        self.worker.run_until_idle()
        assert ticket.done and len(replies) == 1
        return replies[0]


@pytest.fixture
def driver(engine):
    return Driver(engine)


def test_segment_then_track_every_new_frame(driver):
    assert driver.feed(0, 12) == []  # nothing tracked yet: frames are only buffered
    reply = driver.segment(SegmentRequest(QUERY))
    assert reply.success, reply.message
    assert reply.track_id == 1 and reply.answer == DEFAULT_ANSWER
    assert reply.window_frames == 12 and reply.sampled_indices == [0, 2, 5, 8, 11]
    assert [h["i"] for h in reply.sampled_headers] == [0, 2, 5, 8, 11]
    assert reply.newest.header == {"i": 11} and reply.newest.mask.shape == (96, 128)
    assert set(reply.timing_ms) >= {"queue", "preprocess", "language", "decode", "propagate", "total"}
    outs = driver.feed(12, 20)
    assert [o.header["i"] for o in outs] == list(range(12, 20))
    assert all(len(o.objects) == 1 and o.objects[0].track_id == 1 and o.objects[0].query == QUERY for o in outs)
    assert driver.rec.events[0] == (11, 1, QUERY, "started")


def test_window_sec_selects_the_newest_frames(driver):
    driver.feed(0, 20)
    reply = driver.segment(SegmentRequest(QUERY, window_sec=0.45, track=False))
    assert reply.success and reply.window_frames == 5  # stamps within 0.45 s of the newest (10 Hz)
    assert reply.track_id == 0 and driver.worker.tracks == {} and driver.session.track_ids == []
    assert [h["i"] for h in reply.sampled_headers] == [15, 16, 17, 18, 19]


def test_prompt_frames_first_and_sampling_first(driver):
    driver.feed(0, 10)
    reply = driver.segment(SegmentRequest(QUERY, num_frames=3, sampling="first", prompt_frames="first"))
    assert reply.success and reply.sampled_indices == [0, 1, 2]


@pytest.mark.parametrize("request_kw, message", [
    (dict(query=""), "empty"),
    (dict(query="   "), "empty"),
    (dict(query="x" * 100_000), "max_query_chars"),
    (dict(query="the cup \ufffd"), "not valid UTF-8"),
    (dict(query="the cup\x00"), "control characters"),
    (dict(query=QUERY, num_frames=10_000), "outside"),
    (dict(query=QUERY, sampling="random"), "sampling must be one of"),
    (dict(query=QUERY, prompt_frames="middle"), "prompt_frames must be one of"),
    (dict(query=QUERY, window_sec=-1.0), "window_sec"),
    (dict(query=QUERY, window_sec=float("nan")), "window_sec"),
    (dict(query=QUERY, window_sec=1e300), "window_sec"),
    (dict(query="the [SEG] token"), "reserved"),
])
def test_bad_requests_are_answered_at_once_and_change_nothing(driver, request_kw, message):
    driver.feed(0, 6)
    ticket, replies = driver.submit(SegmentRequest(**request_kw))
    assert ticket.done and len(replies) == 1  # answered on submit, before any work
    assert not replies[0].success and message in replies[0].message
    assert driver.worker.run_until_idle() == 0
    assert driver.session.track_ids == [] and len(driver.session.buffer) == 6


def test_num_frames_one_and_default(driver):
    driver.feed(0, 6)
    assert driver.segment(SegmentRequest(QUERY, num_frames=1, track=False)).sampled_indices == [0]
    assert len(driver.segment(SegmentRequest(QUERY, num_frames=0, track=False)).sampled_indices) == 5


def test_query_before_any_frame(driver):
    reply = driver.segment(SegmentRequest(QUERY))
    assert not reply.success and "no frames buffered yet" in reply.message


def test_max_tracks_and_stop(driver):
    driver.feed(0, 8)
    ids = [driver.segment(SegmentRequest(q)).track_id for q in (QUERY, "the bowl", "the box")]
    assert ids == [1, 2, 3]
    reply = driver.segment(SegmentRequest("the plate"))
    assert not reply.success and "max_tracks" in reply.message
    with pytest.raises(ValueError, match="no track 9"):
        driver.worker.stop(9)
    assert driver.worker.stop(2) == [2]
    out = driver.feed(8, 9)[0]
    assert sorted(o.track_id for o in out.objects) == [1, 3] and driver.session.track_ids == [1, 3]
    assert driver.worker.stop(0) == [1, 3]
    assert driver.feed(9, 10) == [] and driver.session.track_ids == []
    assert [(e[1], e[2]) for e in driver.rec.events if e[3] == "stopped"] == [(2, "the bowl"), (1, QUERY),
                                                                              (3, "the box")]


def test_the_same_query_again_replaces_its_track(driver):
    driver.feed(0, 8)
    first = driver.segment(SegmentRequest(QUERY))
    other = driver.segment(SegmentRequest("the bowl"))
    again = driver.segment(SegmentRequest(QUERY))
    assert again.success and again.replaced == [first.track_id] and again.message == f"replaced track {first.track_id}"
    assert sorted(driver.session.track_ids) == sorted([other.track_id, again.track_id])
    assert driver.worker.tracks[again.track_id] == QUERY
    assert (7, first.track_id, QUERY, "stopped") in driver.rec.events


def test_buffer_downscale_tracks_small_and_answers_at_camera_size(engine):
    d = Driver(engine, FrameBuffer(downscale=64))
    d.feed(0, 6)
    assert d.session.buffer.latest().rgb.shape == (48, 64, 3)
    reply = d.segment(SegmentRequest(QUERY))
    assert reply.success and reply.newest.mask.shape == (96, 128)
    assert d.feed(6, 7)[0].objects[0].mask.shape == (96, 128)


def test_an_answer_without_mask_is_a_failed_reply_with_the_answer(tmp_path):
    from sa2va_i_ros.grounding.engine import GroundingEngine
    from sa2va_i_ros.testing.tiny_sa2va import write_tiny_checkpoint

    engine = GroundingEngine.load(str(write_tiny_checkpoint(tmp_path / "no_seg", answer="Sure.")))
    d = Driver(engine)
    d.feed(0, 4)
    reply = d.segment(SegmentRequest(QUERY))
    assert not reply.success and reply.answer == "Sure." and "without a [SEG]" in reply.message
    assert d.session.track_ids == [] and d.rec.events == []


def test_bad_frames_are_refused_without_touching_tracks(driver):
    driver.feed(0, 8)
    driver.segment(SegmentRequest(QUERY))
    for late, code in ((stamp(7), "duplicate"), (stamp(5), "out_of_order")):
        r = driver.worker.offer_frame({"i": -1}, late, frame(99))
        assert not r.push.accepted and r.push.code == code and r.frame is None
    with pytest.raises(ValueError):
        driver.worker.offer_frame({"i": -1}, stamp(8), np.zeros((0, 0, 3), np.uint8))
    assert driver.worker.run_until_idle() == 0
    assert driver.session.track_ids == [1] and len(driver.session.buffer) == 8
    assert driver.feed(8, 9)[0].objects[0].track_id == 1


def test_one_stray_frame_is_held_several_make_a_change(driver):
    """A lone frame of another size, or stamped far in the past or future, neither clears the buffer nor
    becomes its newest frame; three consistent ones are a real change (new resolution, clock reset)."""
    driver.feed(0, 8)
    driver.segment(SegmentRequest(QUERY))
    for stray_stamp, size in ((stamp(7) - 3 * NS, (96, 128)), (stamp(7) + int(0.9 * NS), (96, 128)),
                              (stamp(8), (120, 160))):
        r = driver.worker.offer_frame({"i": -1}, stray_stamp, frame(50, size))
        assert not r.push.accepted and r.push.code == "held" and "held" in r.push.reason
    assert [o.header["i"] for o in driver.feed(8, 11)] == [8, 9, 10]  # the stream goes on untouched
    assert len(driver.session.buffer) == 11
    # a new resolution: the first two frames are held, the third confirms it and all three enter the buffer
    codes = [driver.worker.offer_frame({"i": i}, stamp(i), frame(i, (120, 160))).push.code for i in (11, 12, 13)]
    assert codes == ["held", "held", "size_change"] and len(driver.session.buffer) == 3
    driver.worker.run_until_idle()
    assert driver.rec.outputs[-1].objects[0].mask.shape == (120, 160)  # tracked at its size, shown at the new one
    # a clock reset: three consistent frames far in the past restart the buffer with them
    back = [stamp(0) - 5 * NS + k * NS // 10 for k in range(3)]
    results = [driver.worker.offer_frame({"i": 100 + k}, s, frame(k, (120, 160))) for k, s in enumerate(back)]
    assert [r.push.code for r in results] == ["held", "held", "clock_reset"] and results[-1].clock_reset
    assert [f.stamp_ns for f in driver.session.buffer.window()] == back
    driver.worker.run_until_idle()
    assert driver.rec.outputs[-1].header["i"] == 102  # live tracking goes on with the new clock


@pytest.mark.parametrize("policy, expected", [("catch_up", list(range(12, 18))), ("skip", [17])])
def test_gap_policy_for_frames_that_arrive_during_grounding(engine, policy, expected):
    """Frames 12..17 arrive while the language model runs; the new track catches up or skips."""
    d = Driver(engine, settings=Settings(gap_policy=policy))
    d.feed(0, 12)
    _, replies = d.submit(SegmentRequest(QUERY))
    while d.worker.job is None or d.worker.job.phase is not Phase.GROUNDING:
        d.worker.run_once()
    d.feed(12, 18, run=False)  # the camera keeps publishing meanwhile
    d.worker.run_until_idle()
    assert replies[0].success
    assert [o.header["i"] for o in d.rec.outputs] == expected
    assert d.worker.counts["frames_thinned"] == 5 - len(expected) + 1


def test_one_grounding_at_a_time_busy_or_queued(driver):
    """A second request is answered busy at once while one runs (max_queued_requests 0); with room it waits,
    unanswered, and runs only after the first has finished."""
    driver.feed(0, 6)
    first, first_replies = driver.submit(SegmentRequest(QUERY))
    driver.worker.run_once()  # the first request starts
    busy, busy_replies = driver.submit(SegmentRequest("the bowl"))
    assert busy.done and not busy_replies[0].success and busy_replies[0].message.startswith("busy")
    driver.worker.update(max_queued_requests=1)
    queued, queued_replies = driver.submit(SegmentRequest("the bowl"))
    assert not queued.done and queued_replies == [] and driver.worker.queue_length() == 1
    _, over_replies = driver.submit(SegmentRequest("the box"))
    assert over_replies[0].message.startswith("busy")  # the queue holds one
    driver.worker.run_until_idle()
    assert first_replies[0].success and queued_replies[0].success
    assert {first_replies[0].track_id, queued_replies[0].track_id} == {1, 2}
    assert queued.record.started >= first.record.joined  # it ran after the first one, not beside it
    assert queued_replies[0].timing_ms["queue"] >= 0


@pytest.mark.parametrize("stage", ["queued", "sampling", "language_model", "decoding", "catching_up"])
def test_cancel_in_each_stage_leaves_no_track(engine, stage):
    d = Driver(engine, settings=Settings(max_queued_requests=1))
    d.feed(0, 8)
    if stage == "queued":
        d.submit(SegmentRequest("the bowl", track=False))  # runs first; ours waits behind it
        d.worker.run_once()
    seen = []
    ticket, replies = d.submit(SegmentRequest(QUERY), progress=lambda name, *_: seen.append(name))
    while not ticket.done:
        if stage in seen or (stage == "queued" and "queued" in seen):
            d.worker.cancel(ticket)
        d.worker.run_once()
    assert not replies[0].success and "cancelled" in replies[0].message
    d.worker.run_until_idle()
    assert d.session.track_ids == [] and d.worker.tracks == {} and not d.worker.busy
    assert d.segment(SegmentRequest(QUERY)).success  # and the session still works


def test_presence_settings_are_live(driver):
    driver.feed(0, 6)
    driver.segment(SegmentRequest(QUERY))
    driver.worker.update(presence_threshold=1.0, lost_after_frames=2)  # no tracked frame is 'seen'
    driver.feed(6, 8)
    assert [e[3] for e in driver.rec.events] == ["started", "lost"] and driver.rec.events[-1][0] == 7
    driver.worker.update(presence_threshold=0.0, found_after_frames=3)  # every frame is 'seen'
    driver.feed(8, 10)
    assert [e[3] for e in driver.rec.events] == ["started", "lost"]
    driver.feed(10, 11)
    assert [e[3] for e in driver.rec.events] == ["started", "lost", "found"] and driver.rec.events[-1][0] == 10


def test_each_seg_of_the_answer_is_its_own_track(rig_engine):
    """The answer rig says "Sure, [SEG] and [SEG]." for a query with "and": two tracks, ids in answer order,
    each seeded with its own [SEG]'s masks (the reference: the engine's own grounding of the same window,
    whose newest frame is a prompted frame), both tracked on later frames; stop one, the other goes on."""
    from sa2va_i_ros.testing.answer_rig import QUERIES

    query = QUERIES["two_seg"]
    d = Driver(rig_engine, settings=Settings(max_tracks=4))
    d.feed(0, 8)
    reply = d.segment(SegmentRequest(query))
    assert reply.success, reply.message
    assert reply.answer == "Sure, [SEG] and [SEG]." and reply.track_ids == [1, 2] and reply.track_id == 1
    assert [o.track_id for o in reply.objects] == [1, 2] and reply.newest is reply.objects[0]
    reference = rig_engine.ground([frame(i, (96, 128)) for i in range(8)], query)
    assert reference.sampled_indices[-1] == 7 and len(reference.masks) == 2
    assert (reference.masks[0, -1] != reference.masks[1, -1]).any()  # the two objects differ here
    differ = reference.masks[0, -1] != reference.masks[1, -1]
    for k, obj in enumerate(reply.objects):  # where the two [SEG] masks differ, each track follows its own
        agree = [(obj.mask[differ] == reference.masks[j, -1][differ]).mean() for j in (0, 1)]
        assert agree[k] > 0.6 > agree[1 - k], agree
    assert [(e[1], e[3]) for e in d.rec.events] == [(1, "started"), (2, "started")]
    outs = d.feed(8, 11)
    assert [o.header["i"] for o in outs] == [8, 9, 10]
    assert all(sorted((x.track_id, x.query) for x in o.objects) == [(1, query), (2, query)] for o in outs)
    assert d.worker.tracks == {1: query, 2: query}

    assert d.worker.stop(1) == [1]
    assert [[x.track_id for x in o.objects] for o in d.feed(11, 13)] == [[2], [2]]

    # max_tracks (4) counts every object of an answer: 1 running + 2 new fit, then 3 + 2 do not
    assert d.segment(SegmentRequest("the cup and the plate")).track_ids == [3, 4]
    refused = d.segment(SegmentRequest("a box and a ball"))
    assert not refused.success and "2 objects" in refused.message and "max_tracks" in refused.message
    assert sorted(d.worker.tracks) == [2, 3, 4] and d.session.track_ids == [2, 3, 4]
    # the same query again replaces every track it started
    again = d.segment(SegmentRequest("the cup and the plate"))
    assert again.success and again.replaced == [3, 4] and again.track_ids == [5, 6]
    assert sorted(d.worker.tracks) == [2, 5, 6]


def test_one_object_stopped_while_the_answer_catches_up_lets_the_other_join(rig_engine):
    """Two tracks of one answer are announced at the newest window frame and still catch up on frames that came
    during grounding: stopping one there ends only that one; the other joins and is tracked."""
    from sa2va_i_ros.testing.answer_rig import QUERIES

    d = Driver(rig_engine)
    d.feed(0, 8)
    done = []
    ticket, replies = d.submit(SegmentRequest(QUERIES["two_seg"]), on_done=done.append)
    d.worker.run_once()  # the request starts: its window is frames 0..7
    d.feed(8, 10, run=False)  # they arrive while it is grounded
    while ticket.reply is None:
        d.worker.run_once()
    assert replies[0].track_ids == [1, 2] and not ticket.done  # answered, still catching up on 8 and 9
    assert d.worker.stop(1) == [1]
    d.worker.run_until_idle()
    assert done and done[0].success and d.worker.tracks == {2: QUERIES["two_seg"]} and d.session.track_ids == [2]
    assert [[x.track_id for x in o.objects] for o in d.feed(10, 12)] == [[2], [2]]
    assert [(e[1], e[3]) for e in d.rec.events] == [(1, "started"), (2, "started"), (1, "stopped")]


def test_idle_only_once_every_frame_and_request_is_done(driver):
    """``idle`` (reported on /diagnostics, awaited by the replay harness): false while a frame, a request or a
    tracked object's newest frame waits; true once the worker has nothing left."""
    w = driver.worker
    assert w.idle  # nothing handed over yet
    driver.feed(0, 6, run=False)
    assert not w.idle  # frames in the inbox
    w.run_until_idle()
    assert w.idle  # buffered; nothing tracked, so nothing is due for them
    ticket, _ = driver.submit(SegmentRequest(QUERY))
    assert not w.idle  # a request waits
    w.run_until_idle()
    assert ticket.done and w.idle
    driver.feed(6, 7, run=False)
    assert not w.idle  # a tracked object's new frame
    w.run_once()  # takes it from the inbox and tracks it
    assert w.idle and driver.rec.outputs[-1].header == {"i": 6}
