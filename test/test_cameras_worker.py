"""Several cameras on the real (tiny) model: one engine and one SAM2 for all, each camera's state its own.

The exactness check: a camera's outputs with a second camera served beside it
(its frames interleaved, its own object tracked) are the same masks, bit for
bit, as that camera's outputs alone. Then the threaded worker with two camera
threads: a query for every camera is answered once for both, each camera's
outputs hold only its own track, and closing answers what waits.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from frames import frame_rgb, stamp_ns
from test_tracker_helpers import one_torch_thread  # noqa: F401  (autouse: one torch thread on a shared machine)

from sa2va_i_ros.runtime.frame_buffer import FrameBuffer
from sa2va_i_ros.runtime.session import SegmentRequest, Settings
from sa2va_i_ros.runtime.worker import PerceptionWorker
from sa2va_i_ros.runtime.worker.cameras import ALL, CameraWorkers, build_sessions
from sa2va_i_ros.testing.simulation import SimClock
from sa2va_i_ros.tracking import TrackerConfig

QUERY = "the cup left of the bowl"
SIZE = (96, 128)


class Recorder:
    def __init__(self):
        self.outputs, self.events = [], []

    def output(self, out, frame):
        self.outputs.append(out)

    def event(self, header, track_id, query, kind, score):
        self.events.append((track_id, kind))


@pytest.fixture(scope="module")
def engine(tiny_checkpoint):
    """An engine of this module's own: tracking recomputes SAM2's rotary tables (``freqs_cis``) for the
    feature size it meets, and test_model_loading compares the session's engine with a fresh build."""
    from sa2va_i_ros.grounding.engine import GroundingEngine

    return GroundingEngine.load(str(tiny_checkpoint))


def wrist_frame(i: int) -> np.ndarray:
    return np.ascontiguousarray(frame_rgb(1000 + i, SIZE)[:, ::-1])  # another view: another scene


def sessions(engine, cameras):
    return build_sessions(engine, cameras, lambda: FrameBuffer(max_frames=50, max_seconds=30.0),
                          Settings(max_tracks=3), tracker_config=TrackerConfig(lost_after=3))


def test_the_cameras_share_the_model_and_keep_their_own_tracker_state(engine):
    s = sessions(engine, ["head", "wrist"])
    assert s["head"].engine is s["wrist"].engine
    assert s["head"].tracker.sam2 is s["wrist"].tracker.sam2 is engine.model.sam2  # one set of weights
    assert s["head"].tracker is not s["wrist"].tracker and s["head"].buffer is not s["wrist"].buffer


def test_a_camera_tracks_exactly_as_alone_with_a_second_camera_beside_it(engine):
    rec_alone = Recorder()
    alone = CameraWorkers(sessions(engine, ["head"]), {"head": rec_alone}, SimClock(), threaded=False)
    recs = {"head": Recorder(), "wrist": Recorder()}
    both = CameraWorkers(sessions(engine, ["head", "wrist"]), recs, SimClock(), threaded=False)
    for i in range(10):
        alone["head"].offer_frame({"i": i}, stamp_ns(i), frame_rgb(i, SIZE))
        both["head"].offer_frame({"i": i}, stamp_ns(i), frame_rgb(i, SIZE))
        both["wrist"].offer_frame({"w": i}, stamp_ns(i) + 3_000_000, wrist_frame(i))
    got = {}
    alone.submit("", SegmentRequest(QUERY), on_reply=lambda r: got.setdefault("alone", r))
    both.submit(ALL, SegmentRequest(QUERY), on_reply=lambda r: got.setdefault("both", r))
    alone.run_until_idle()
    both.run_until_idle()
    assert got["alone"]["head"].success and all(r.success for r in got["both"].values())
    assert got["both"]["head"].track_ids != got["both"]["wrist"].track_ids
    for i in range(10, 18):
        alone["head"].offer_frame({"i": i}, stamp_ns(i), frame_rgb(i, SIZE))
        alone.run_until_idle()
        both["wrist"].offer_frame({"w": i}, stamp_ns(i) + 3_000_000, wrist_frame(i))
        both["head"].offer_frame({"i": i}, stamp_ns(i), frame_rgb(i, SIZE))
        both.run_until_idle()
    assert len(rec_alone.outputs) == len(recs["head"].outputs) == 8
    for a, b in zip(rec_alone.outputs, recs["head"].outputs, strict=True):
        assert a.header == b.header
        np.testing.assert_array_equal(a.objects[0].mask, b.objects[0].mask)
        assert a.objects[0].score == b.objects[0].score
    head_id, wrist_id = got["both"]["head"].track_ids[0], got["both"]["wrist"].track_ids[0]
    assert all([o.track_id for o in out.objects] == [head_id] for out in recs["head"].outputs)
    assert [out.header["w"] for out in recs["wrist"].outputs] == list(range(10, 18))
    assert all([o.track_id for o in out.objects] == [wrist_id] for out in recs["wrist"].outputs)


def test_threaded_two_camera_threads_a_query_for_every_camera_then_close(engine):
    recs = {"head": Recorder(), "wrist": Recorder()}
    workers = CameraWorkers(sessions(engine, ["head", "wrist"]), recs)
    stop = threading.Event()

    def camera(name, image):
        i = 0
        while not stop.is_set() and i < 400:
            workers[name].offer_frame({"i": i}, stamp_ns(i), image(i))
            i += 1
            stop.wait(0.03)

    threads = [threading.Thread(target=camera, args=("head", lambda i: frame_rgb(i, SIZE))),
               threading.Thread(target=camera, args=("wrist", wrist_frame))]
    for t in threads:
        t.start()
    try:
        stop.wait(0.5)
        replies, done = [], threading.Event()
        workers.submit(ALL, SegmentRequest(QUERY), on_reply=replies.append, on_done=lambda r: done.set())
        assert done.wait(120), "the request never joined both cameras"
        assert len(replies) == 1 and sorted(replies[0]) == ["head", "wrist"]
        ids = {c: r.track_ids for c, r in replies[0].items()}
        assert all(r.success for r in replies[0].values()) and ids["head"] != ids["wrist"]
        before = {c: len(r.outputs) for c, r in recs.items()}
        end = threading.Event()
        end.wait(1.5)
        for c, rec in recs.items():
            new = rec.outputs[before[c]:]
            assert new, f"camera {c} published nothing live"
            assert all([o.track_id for o in out.objects] == ids[c] for out in new)
        late = []
        workers.submit("wrist", SegmentRequest(QUERY + " again"), on_reply=late.append)
    finally:
        stop.set()
        for t in threads:
            t.join()
        ended = workers.close("test over")
    assert ended and len(late) == 1  # answered: joined, or told the worker closed
    assert not any(w.errors for w in workers.workers.values())
    for c in ("head", "wrist"):
        assert (ids[c][0], "stopped") in recs[c].events
    assert isinstance(workers["head"], PerceptionWorker) and workers[""] is workers["head"]
