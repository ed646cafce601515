"""No worker step does more than one encoder pass or one decoder call, seeding included (issue 21, item 9).

Seeding used to prompt every prompted frame of every object in one step (with a
tracker on another SAM2 than the checkpoint's, one encoder pass per prompted
frame: a minute on a CPU with real-size Hiera-T). Now ``seed_steps`` prompts
one frame per step and the worker interleaves live steps; the catch-up's
deadline is set before the first, so the budget covers seeding; when the
measured costs make ``max_catch_up_sec`` impossible, the reply and the worker's
``budget`` reading (/diagnostics) say so.
"""

from __future__ import annotations

import re

import pytest
from test_simulation import PROFILES, STEP, check_joined_in_budget, check_stream
from test_simulation_async import longest_stage_s
from test_tracker_helpers import (  # noqa: F401
    EncoderCounter,
    assert_rows_agree,
    blob_mask,
    make_frames,
    one_torch_thread,
    tiny_model,
)

from sa2va_i_ros.runtime.session import Settings
from sa2va_i_ros.runtime.worker.job import Phase
from sa2va_i_ros.testing.simulation import Simulation
from sa2va_i_ros.tracking import Grounding, StreamingTracker


def test_seed_steps_run_one_encoder_pass_or_one_prompt_per_step():
    tracker = StreamingTracker(tiny_model(0))
    frames = make_frames(8)
    prompts = [1, 4, 7]
    g = Grounding(frames, list(range(8)), prompts, [blob_mask(i) for i in prompts])
    encode, prompt, calls = tracker.runner.encode, tracker.runner.prompt, []
    tracker.runner.encode = lambda pixels: calls.append("encode") or encode(pixels)
    tracker.runner.prompt = lambda *a: calls.append("prompt") or prompt(*a)
    steps, per_step = tracker.seed_steps(g, obj_id=3), []
    while True:
        before = len(calls)
        try:
            next(steps)
        except StopIteration as done:
            prepared = done.value
            break
        per_step.append(calls[before:])
    assert per_step == [["encode"], ["prompt"]] * 3  # one model call per step
    assert prepared.obj_id == 3 and sorted(prepared.track.pending_prompts) == prompts
    other = StreamingTracker(tiny_model(0))
    ref = other.seed_object(g, obj_id=3)  # seed_object: the same, all at once
    for t in range(1, 8):
        a = tracker.advance_object(prepared, window_index=t).objects[3]
        b = other.advance_object(ref, window_index=t).objects[3]
        assert (a.mask == b.mask).all() and a.score == pytest.approx(b.score, abs=1e-6)


def test_joining_objects_catch_up_together_with_one_encoder_pass_per_frame():
    """Two objects of one answer on the same window (no precomputed features) and later frames: one encoder
    pass per frame for both (it was one per object); each equals the object caught up alone."""
    frames = make_frames(12)
    window, later = frames[:6], frames[6:9]
    prompts = [1, 4]
    seeds = {7: [blob_mask(i) for i in prompts], 8: [blob_mask(i, shift=20) for i in prompts]}

    def run(objects):
        model = tiny_model(0)
        tracker = StreamingTracker(model)
        prepared = [tracker.seed_object(Grounding(window, list(range(6)), prompts, seeds[i]), obj_id=i)
                    for i in objects]
        with EncoderCounter(model) as encoder:
            out = [tracker.advance_objects(prepared, window_index=t) for t in range(1, 6)]
            out += [tracker.advance_objects(prepared, frame=f, stamp=100 + k) for k, f in enumerate(later)]
        return out, encoder.calls

    together, passes = run([7, 8])
    assert passes == 3 + 3  # window frames 2, 3, 5 (1 and 4 are prompts) and the 3 later frames
    for i in (7, 8):
        alone, _ = run([i])
        for a, b in zip(together, alone, strict=True):
            k = 0 if i == 7 else 1
            assert_rows_agree(a[k].objects[i], b[0].objects[i], f"object {i}")


@pytest.mark.parametrize("profile", PROFILES)
def test_async_seeding_is_one_prompted_frame_per_step_and_live_steps_go_on(profile):
    """Jetson or desktop, one tracked object, a query with 5 prompted frames: no background step is longer
    than the profile's longest single stage with ONE prompted frame; the tracked object's gap during the
    seeding is at most two live steps and one stage."""
    p = PROFILES[profile]
    sim = Simulation(p, 30, Settings(**STEP))
    a, b, seeding = two_queries_timing_seeding(sim, p)
    check_stream(sim)
    assert b.reply.success and b.ticket.record.first_live is not None
    assert sim.longest_background_step() <= longest_stage_s(p, prompts=1) + 1e-9
    assert len(seeding) == 2 * (5 + 1)  # both requests: 5 prompted frames each, then the catch-up is made
    assert max(seeding) == pytest.approx(p.seed_prompt_s)  # one prompted frame per step
    rec = b.ticket.record
    live = p.live_s(1) + p.publish_s
    seeding_end = rec.replied
    gap = sim.max_gap(a.reply.track_id, rec.seeded, seeding_end)
    assert gap <= 2 * live + longest_stage_s(p, prompts=1) + sim.period + 1e-9


def test_an_impossible_budget_is_said_in_the_reply_and_the_budget_reading():
    """Jetson, one tracked object, an answer with two [SEG]s: two new objects cannot join within 1 s (seeding
    10 prompted frames, catch-up frames of two objects, live steps of one then three): the reply says so,
    with the expected join time, and the worker's ``budget`` reading is over budget. Desktop fits: no word."""
    for profile, fits in (("jetson", False), ("desktop_gpu", True)):
        p = PROFILES[profile]
        sim = Simulation(p, 30, Settings(**STEP))
        sim.request(2.0, "the cup")
        sim.at(3.0 + 3 * p.grounding_s(), lambda s=sim: setattr(s.engine, "answer", "Sure, [SEG] and [SEG]."))
        b = sim.request(4.0 + 3 * p.grounding_s(), "the two bowls")
        sim.run(8.0 + 6 * p.grounding_s())
        check_stream(sim)
        assert b.reply.success and len(b.reply.track_ids) == 2
        expected, budget = sim.worker.budget
        rec = b.ticket.record
        took = rec.first_live - rec.seeded
        if fits:
            assert "max_catch_up_sec" not in b.reply.message and expected <= budget
            assert took <= budget + sim.period + 1e-9
        else:
            assert "max_catch_up_sec 1 s cannot be met" in b.reply.message, b.reply.message
            assert expected > budget and took > budget  # the warning was right
            said = float(re.search(r"about (\d+\.\d+) s", b.reply.message).group(1))
            assert said > budget


def test_async_a_tracker_on_its_own_sam2_seeds_an_encoder_pass_per_step():
    """``tracker_model`` another SAM2 (the issue's 59.9 s step): each prompted frame's encoder pass is its own
    step, the cost model learns a prompted frame as encoder pass + prompt, and the new object still joins in
    budget on the desktop profile."""
    p = PROFILES["desktop_gpu"]
    sim = Simulation(p, 30, Settings(**STEP))
    sim.tracker.own_encoder = True
    a, b, seeding = two_queries_timing_seeding(sim, p)
    check_stream(sim)
    assert a.reply.success and b.reply.success
    assert len(seeding) == 2 * (2 * 5 + 1)  # an encoder pass, then a prompt, per prompted frame; then the catch-up
    assert max(seeding) == pytest.approx(max(p.encode_s, p.seed_prompt_s))
    assert sim.worker.costs.seed_prompt_s == pytest.approx(p.encode_s + p.seed_prompt_s)
    check_joined_in_budget(sim, b, 1.0)


def two_queries_timing_seeding(sim, p):
    """Two queries, the second while the first is tracked; returns their requests and each seeding step's
    device-synchronised duration."""
    a, b = sim.request(2.0, "the cup"), sim.request(4.0 + 3 * p.grounding_s(), "the bowl")
    background, seeding = sim.worker._background_step, []

    def noted() -> None:
        job, t0 = sim.worker.job, sim.clock.now()
        phase = job.phase if job is not None else None
        background()
        sim.worker.device_time.sync()
        if phase is Phase.SEEDING:
            seeding.append(sim.clock.now() - t0)
    sim.worker._background_step = noted
    sim.run(8.0 + 6 * p.grounding_s())
    return a, b, seeding
