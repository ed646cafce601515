"""The perception session without ROS: requests, tracking, gaps, bad input, concurrency."""

import threading
import time

import numpy as np
import pytest
from frames import NS, frame_rgb, stamp_ns

from sa2va_i_ros.core.frame_buffer import FrameBuffer
from sa2va_i_ros.core.session import SegmentRequest, Session, Settings
from sa2va_i_ros.core.tracker import TrackerConfig

QUERY = "the cup left of the bowl"
frame, stamp = frame_rgb, stamp_ns


@pytest.fixture
def session(engine):
    return Session(engine, FrameBuffer(max_frames=50, max_seconds=30.0), TrackerConfig(lost_after=3),
                   Settings(max_tracks=3))


def feed(session, start, stop, size=(96, 128)):
    outs = []
    for i in range(start, stop):
        r = session.on_frame({"i": i}, stamp(i), frame(i, size))
        assert r.push.accepted, r.push.reason
        outs.append(r.output)
    return outs


def test_segment_then_track_every_new_frame(session):
    assert feed(session, 0, 12) == [None] * 12  # nothing tracked yet: frames are only buffered
    reply = session.segment(SegmentRequest(QUERY))
    assert reply.success, reply.message
    assert reply.track_id == 1 and reply.answer == "Sure, [SEG]."
    assert reply.window_frames == 12 and reply.sampled_indices == [0, 2, 5, 8, 11]
    assert [h["i"] for h in reply.sampled_headers] == [0, 2, 5, 8, 11]
    assert reply.newest.header == {"i": 11} and reply.newest.mask.shape == (96, 128)
    assert set(reply.timing_ms) >= {"preprocess", "language", "decode", "propagate", "total"}
    outs = feed(session, 12, 20)
    assert [o.header["i"] for o in outs] == list(range(12, 20))
    assert all(len(o.objects) == 1 and o.objects[0].track_id == 1 and o.objects[0].query == QUERY for o in outs)


def test_window_sec_selects_the_newest_frames(session):
    feed(session, 0, 20)
    reply = session.segment(SegmentRequest(QUERY, window_sec=0.45, track=False))
    assert reply.success and reply.window_frames == 5  # stamps within 0.45 s of the newest (10 Hz)
    assert reply.track_id == 0 and session.track_ids == []
    assert [h["i"] for h in reply.sampled_headers] == [15, 16, 17, 18, 19]


def test_prompt_frames_first_and_sampling_first(session):
    feed(session, 0, 10)
    reply = session.segment(SegmentRequest(QUERY, num_frames=3, sampling="first", prompt_frames="first"))
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
    (dict(query="the [SEG] token"), "reserved"),
])
def test_bad_requests_get_a_clear_message_and_change_nothing(session, request_kw, message):
    feed(session, 0, 6)
    reply = session.segment(SegmentRequest(**request_kw))
    assert not reply.success and message in reply.message
    assert session.track_ids == [] and len(session.buffer) == 6


def test_num_frames_one_and_default(session):
    feed(session, 0, 6)
    assert session.segment(SegmentRequest(QUERY, num_frames=1, track=False)).sampled_indices == [0]
    assert len(session.segment(SegmentRequest(QUERY, num_frames=0, track=False)).sampled_indices) == 5


def test_query_before_any_frame(session):
    reply = session.segment(SegmentRequest(QUERY))
    assert not reply.success and "no frames buffered yet" in reply.message


def test_max_tracks_and_stop(session):
    feed(session, 0, 8)
    ids = [session.segment(SegmentRequest(q)).track_id for q in (QUERY, "the bowl", "the box")]
    assert ids == [1, 2, 3]
    reply = session.segment(SegmentRequest("the plate"))
    assert not reply.success and "max_tracks" in reply.message
    with pytest.raises(ValueError, match="no track 9"):
        session.stop(9)
    assert session.stop(2) == [2] and session.track_ids == [1, 3]
    out = feed(session, 8, 9)[0]
    assert sorted(o.track_id for o in out.objects) == [1, 3]
    assert session.stop(0) == [1, 3] and session.track_ids == []
    assert feed(session, 9, 10) == [None]


def test_the_same_query_again_replaces_its_track(session):
    feed(session, 0, 8)
    first = session.segment(SegmentRequest(QUERY))
    other = session.segment(SegmentRequest("the bowl"))
    again = session.segment(SegmentRequest(QUERY))
    assert again.success and again.replaced == [first.track_id] and again.message == f"replaced track {first.track_id}"
    assert sorted(session.track_ids) == sorted([other.track_id, again.track_id])
    assert session.queries[again.track_id] == QUERY


def test_buffer_downscale_tracks_small_and_answers_at_camera_size(engine):
    s = Session(engine, FrameBuffer(downscale=64))
    feed(s, 0, 6)
    assert s.buffer.latest().rgb.shape == (48, 64, 3)
    reply = s.segment(SegmentRequest(QUERY))
    assert reply.success and reply.newest.mask.shape == (96, 128)
    assert feed(s, 6, 7)[0].objects[0].mask.shape == (96, 128)


def test_an_answer_without_mask_is_a_failed_reply_with_the_answer(tmp_path):
    from sa2va_i_ros.core.checkpoint.tiny import write_tiny_checkpoint
    from sa2va_i_ros.core.grounding import GroundingEngine

    engine = GroundingEngine.load(str(write_tiny_checkpoint(tmp_path / "no_seg", answer="Sure.")))
    s = Session(engine, FrameBuffer())
    feed(s, 0, 4)
    reply = s.segment(SegmentRequest(QUERY))
    assert not reply.success and reply.answer == "Sure." and "without a [SEG]" in reply.message
    assert s.track_ids == []


def test_bad_frames_are_refused_without_touching_tracks(session):
    feed(session, 0, 8)
    session.segment(SegmentRequest(QUERY))
    for late, code in ((stamp(7), "duplicate"), (stamp(5), "out_of_order")):
        r = session.on_frame({"i": -1}, late, frame(99))
        assert not r.push.accepted and r.push.code == code and r.output is None
    with pytest.raises(ValueError):
        session.on_frame({"i": -1}, stamp(8), np.zeros((0, 0, 3), np.uint8))
    assert session.track_ids == [1] and len(session.buffer) == 8
    assert feed(session, 8, 9)[0].objects[0].track_id == 1


def test_frame_size_change_keeps_tracks_at_the_new_size(session):
    feed(session, 0, 8)
    session.segment(SegmentRequest(QUERY))
    r = session.on_frame({"i": 8}, stamp(8), frame(8, size=(120, 160)))
    assert r.push.code == "size_change" and len(session.buffer) == 1
    assert r.output.objects[0].mask.shape == (120, 160)  # tracked at the grounding size, shown at the new one


def test_clock_jump_back_restarts_the_buffer(session):
    feed(session, 0, 8)
    r = session.on_frame({"i": 0}, stamp(0) - 5 * NS, frame(0))
    assert r.clock_reset and r.push.accepted and len(session.buffer) == 1


@pytest.mark.parametrize("policy, expected", [("catch_up", list(range(12, 18))), ("skip", [17])])
def test_gap_policy_for_frames_that_arrive_during_grounding(engine, policy, expected):
    """Frames 12..17 arrive while the language model runs; the new track catches up or skips."""
    s = Session(engine, FrameBuffer(), TrackerConfig(), Settings(gap_policy=policy))
    feed(s, 0, 12)
    original = s.engine.ground

    def slow_ground(*args, **kwargs):
        result = original(*args, **kwargs)
        feed(s, 12, 18)  # the camera keeps publishing meanwhile
        return result

    s.engine.ground = slow_ground
    try:
        reply = s.segment(SegmentRequest(QUERY))
    finally:
        s.engine.ground = original
    assert reply.success
    assert [o.header["i"] for o in reply.caught_up] == expected


def test_one_grounding_at_a_time_busy_or_queued(engine):
    s = Session(engine, FrameBuffer(), settings=Settings(max_queued_requests=0))
    feed(s, 0, 6)
    gate = threading.Event()
    original = s.engine.ground

    def blocking_ground(*args, **kwargs):
        gate.wait(10)
        return original(*args, **kwargs)

    s.engine.ground = blocking_ground
    replies = {}
    try:
        first = threading.Thread(target=lambda: replies.setdefault("first", s.segment(SegmentRequest(QUERY))))
        first.start()
        while not s.grounding_running:
            time.sleep(0.01)
        busy = s.segment(SegmentRequest(QUERY))
        assert not busy.success and busy.message.startswith("busy")
        s.update(max_queued_requests=1)
        second = threading.Thread(target=lambda: replies.setdefault("second", s.segment(SegmentRequest(QUERY))))
        second.start()
        time.sleep(0.2)
        gate.set()
        first.join(20)
        second.join(20)
    finally:
        s.engine.ground = original
    assert replies["first"].success and replies["second"].success
    assert {replies["first"].track_id, replies["second"].track_id} == {1, 2}


@pytest.mark.parametrize("stage", ["queued", "sampling", "language_model", "decoding", "catching_up"])
def test_cancel_in_each_stage_leaves_no_track(engine, stage):
    s = Session(engine, FrameBuffer(), settings=Settings(max_queued_requests=1))
    feed(s, 0, 8)
    seen = []

    def progress(name, fraction, detail):
        seen.append(name)

    holder = threading.Timer(0.3, s._leave)
    if stage == "queued":
        s._running = True  # another request holds the grounding slot
        holder.start()
    reply = s.segment(SegmentRequest(QUERY), progress, cancelled=lambda: stage in seen)
    assert not reply.success and "cancelled" in reply.message
    if stage == "queued":
        holder.join()
    assert s.track_ids == [] and not s.grounding_running
    assert s.segment(SegmentRequest(QUERY)).success  # and the session still works
