"""Presence: score = sigmoid(object score), lost/found hysteresis, events consistent with ``visible``."""

from __future__ import annotations

import itertools
import math

import pytest
from test_tracker_helpers import (
    blob_mask,
    make_frames,
    object_results,
    offline_reference,
    one_torch_thread,  # noqa: F401  (autouse fixture)
    tiny_model,
)

from sa2va_i_ros.tracking import Grounding, PresenceMonitor, StreamingTracker, TrackerConfig


def _run(monitor, scores):
    events, visible = [], []
    for k, s in enumerate(scores):
        ev = monitor.update(s, k)
        events.append(None if ev is None else (ev.kind, ev.stamp, ev.score))
        visible.append(monitor.visible)
    return events, visible


def test_lost_after_consecutive_low_frames_found_after_consecutive_high():
    m = PresenceMonitor(3, threshold=0.5, lost_after=3, found_after=2)
    scores = [0.9, 0.1, 0.2, 0.9, 0.1, 0.2, 0.3, 0.4, 0.8, 0.1, 0.7, 0.6, 0.2]
    events, visible = _run(m, scores)
    assert events == [None, None, None, None, None, None, ("lost", 6, 0.3), None, None, None, None,
                      ("found", 11, 0.6), None]
    assert visible == [True] * 6 + [False] * 5 + [True] * 2


def test_threshold_is_inclusive_and_defaults_are_immediate_found():
    m = PresenceMonitor(1, threshold=0.5, lost_after=1, found_after=1)
    events, visible = _run(m, [0.5, 0.49, 0.5, 0.5])
    assert [e and e[0] for e in events] == [None, "lost", "found", None]
    assert visible == [True, False, True, True]
    assert TrackerConfig().found_after == 1


def test_stream_events_match_scores_and_visible_flags():
    model = tiny_model()
    frames = make_frames(40)
    cfg = TrackerConfig(lost_after=2, found_after=1, threshold=0.5)
    tracker = StreamingTracker(model, cfg)
    added = tracker.add_object(Grounding(frames[:5], list(range(5)), [1], [blob_mask(1)]))
    live = [tracker.step(f, 5 + k) for k, f in enumerate(frames[5:])]
    frames_out = added.frames + live
    results = object_results(frames_out, added.obj_id)

    # scores are sigmoid(object_score_logits) of sam2's offline run
    ref = offline_reference(model, frames, [(1, blob_mask(1))])
    for r in results:
        assert r.score == pytest.approx(1 / (1 + math.exp(-ref[r.frame_index].score_logit)), abs=1e-6)

    # replay the hysteresis on the scores: same events, same visible flags
    oracle = PresenceMonitor(added.obj_id, 0.5, 2, 1)
    kinds = []
    for f, r in zip(frames_out, results, strict=True):
        ev = oracle.update(r.score, r.stamp)
        assert r.visible == oracle.visible
        assert [(e.obj_id, e.kind, e.stamp, e.score) for e in f.events] == (
            [] if ev is None else [(ev.obj_id, ev.kind, ev.stamp, ev.score)])
        kinds += [e.kind for e in f.events]
    # the video really exercises both transitions, and visible flips only on them
    assert "lost" in kinds and "found" in kinds
    assert results[0].is_prompt and results[0].visible and not frames_out[0].events
    flips = sum(a.visible != b.visible for a, b in itertools.pairwise(results))
    assert flips == len(kinds)
    assert tracker.is_visible(added.obj_id) == results[-1].visible
