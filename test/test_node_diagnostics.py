"""The segment node's /diagnostics statuses, assembled from stand-ins of the worker and the frame publisher."""

from __future__ import annotations

from types import SimpleNamespace

from builtin_interfaces.msg import Time
from std_msgs.msg import Header

from sa2va_i_ros.ros.diagnostics import ERROR, OK, WARN, Percentiles, RateMeter, node_statuses

FRAMES = SimpleNamespace(rate=RateMeter(), last_output_at=99.5, overhead_ms=Percentiles(), publish_ms=Percentiles(),
                         published=lambda: {"outputs_pending": 1, "last_output_stamp_ns": 4_987_750_009})


def worker(visible: bool, health=None) -> SimpleNamespace:
    health = health or {"level": "ok", "message": "", "faults": 0, "last_fault": ""}
    return SimpleNamespace(counts_now=lambda: {"frames_live": 7}, health=SimpleNamespace(snapshot=lambda: health),
                           session=SimpleNamespace(buffer=[0, 1, 2]), busy=True,
                           queue_length=lambda: 2, newest_header=Header(stamp=Time(sec=5, nanosec=9)), idle=False,
                           tracks={3: "the cup"}, is_visible=lambda i: visible,
                           regrounder=SimpleNamespace(plan=SimpleNamespace(attempts=lambda i: 1)))


def statuses(w, model_state="loaded", active=True, in_rate=0.0, newest_in=None):
    return {s.name.split(": ")[-1]: s for s in node_statuses(
        "/sa2va_i", w, model_state=model_state, active=active, in_rate=in_rate, input_counts={"image held": 2},
        images_received=9, frames=FRAMES, newest_in=newest_in, now=100.0)}


def values(status) -> dict:
    return {kv.key: kv.value for kv in status.values}


def test_a_configured_node_reports_model_input_output_and_each_track_in_order():
    got = statuses(worker(visible=False), in_rate=10.0)
    assert list(got) == ["model", "input", "output", "worker", "track 3"]
    assert got["worker"].level == OK and values(got["worker"]) == {"faults": "0", "last_fault": ""}
    assert got["model"].level == OK and values(got["model"]) == {"active": "True"}
    assert got["input"].level == OK and got["input"].message == "10.0 frames/s"
    assert values(got["input"]) == {"rate_hz": "10.00", "input_age_ms": "nan", "image held": "2", "buffered": "3"}
    assert list(values(got["input"])) == ["rate_hz", "input_age_ms", "image held", "buffered"]
    assert list(values(got["output"])) == [
        "rate_hz", "stamp_lag_ms", "output_age_ms", "overhead_ms_p50", "overhead_ms_p95", "publish_ms_p50",
        "publish_ms_p95", "grounding_running",
        "requests_waiting", "images_received", "newest_stamp_ns", "worker_idle", "outputs_pending",
        "last_output_stamp_ns", "frames_live"]
    # the worker's newest frame (5 s + 9 ns) against the newest output (4.98775 s + 9 ns): 12.25 ms of stream
    assert values(got["output"])["newest_stamp_ns"] == "5000000009" and values(got["output"])["stamp_lag_ms"] == "12.2"
    assert values(got["output"])["output_age_ms"] == "500.0"  # wall clock: 100.0 s now, published at 99.5 s
    assert got["track 3"].level == WARN and got["track 3"].message == "lost"
    assert values(got["track 3"]) == {"query": "the cup", "reground_misses": "1"}


def test_an_active_node_without_input_warns_and_a_failed_configure_is_an_error():
    assert statuses(worker(visible=True))["input"].level == WARN
    assert statuses(worker(visible=True))["track 3"].level == OK
    got = statuses(None, model_state="configure failed: no such file", active=False)
    assert list(got) == ["model", "input", "output"] and got["model"].level == ERROR
    assert got["input"].level == OK and "buffered" not in values(got["input"])
    assert values(got["output"])["newest_stamp_ns"] == "-1" and values(got["output"])["grounding_running"] == "False"
    assert statuses(None, model_state="unconfigured", active=False)["model"].level == WARN


def test_a_fault_the_worker_contained_is_an_error_until_its_next_good_step():
    """The real threaded worker: an injected out-of-memory error in a grounding shows as ERROR with the reason
    (the request's reply), and OK again once a step went well."""
    from sa2va_i_ros.testing.faults import out_of_memory
    from sa2va_i_ros.testing.threaded_rig import Rig

    rig = Rig()
    try:
        rig.pump_until(lambda: rig.index >= 10)
        rig.plan.arm("grounding", 2, out_of_memory())
        reply = rig.segment("the cup")
        got = statuses(rig.worker)["worker"]
        assert got.level == ERROR and got.message == reply.message and "out of memory" in got.message
        assert values(got)["faults"] == "1"
        assert rig.segment("the cup").success
        got = statuses(rig.worker)["worker"]
        assert got.level == OK and values(got) == {"faults": "1", "last_fault": reply.message}
    finally:
        rig.close()


def test_a_catch_up_that_cannot_meet_its_budget_warns_with_the_expected_join_time():
    w = worker(visible=True)
    w.budget = (2.5, 1.0)  # the worker's reading after a seeding step (runtime/worker/budget.py)
    got = statuses(w, in_rate=10.0)
    assert list(got) == ["model", "input", "output", "catch-up", "worker", "track 3"]
    assert got["catch-up"].level == WARN and "expected join in 2.50 s" in got["catch-up"].message
    assert values(got["catch-up"]) == {"expected_join_s": "2.500", "max_catch_up_sec": "1"}
    w.budget = (0.6, 1.0)
    assert statuses(w, in_rate=10.0)["catch-up"].level == OK


def test_lags_are_measured_in_stream_stamps_and_ages_in_wall_time():
    """Issue 22: a bag recorded long ago read stamp_lag_ms ~9.7e10 (wall clock minus the frame's stamp). The lag is
    the newest frame received minus the newest output, in the camera's stamps; wall-clock ages apart. The newest
    frame comes from the image callback (``newest_in``), not from the worker, which may be inside a long step."""
    got = statuses(worker(visible=True), in_rate=10.0, newest_in=(5_012_750_009, 99.75))
    out = values(got["output"])
    assert out["newest_stamp_ns"] == "5012750009"  # not the worker's 5000000009
    assert out["stamp_lag_ms"] == "25.0"  # 5.01275 s - 4.98775 s
    assert values(got["input"])["input_age_ms"] == "250.0" and out["output_age_ms"] == "500.0"
