"""The node under the conditions a user met with the ROS 2 command-line tools (issue 11).

Each test is about one problem found there: lost/found during a catch-up,
bursts of requests, waiting requests holding executor threads, queue time,
cleanup during a grounding, track ids across cleanups, live presence
parameters, stray frames, autostart, the shutdown transition, and a frame
arriving while a track joins. The node runs with its production executor and
QoS; a test changes a parameter only when it is about that parameter. Long
model calls are made deterministic by holding the worker in a grounding step
(``NodeHarness.hold_grounding``), never by sleeping.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest
import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from node_harness import NodeHarness, image_msg, stamp_ns
from rclpy.parameter import Parameter
from test_tracker_helpers import one_torch_thread  # noqa: F401  (autouse: one torch thread on a shared machine)

from sa2va_i_ros.msg import TrackEvent
from sa2va_i_ros.ros.conversions import stamp_to_ns
from sa2va_i_ros.srv import Segment
from sa2va_i_ros.testing.ros_env import local_ros_env

pytestmark = pytest.mark.ros
QUERY = "the cup left of the bowl"
NS = 1_000_000_000


@pytest.fixture
def node(tiny_checkpoint, request):
    params = getattr(request, "param", {})
    h = NodeHarness(tiny_checkpoint, name=f"rt_{request.node.name[5:30].strip('_[]')}", **params)
    if not params.get("autostart"):
        h.start()
    yield h
    h.close()


def buffer_frames(h: NodeHarness, start: int, stop: int) -> None:
    h.publish_frames(start, stop)
    h.wait_for(lambda: h.buffered() >= stop - start, "frames buffered")


def wait_outputs(h: NodeHarness, i: int) -> None:
    """Until the objects message of frame ``i`` arrived here (the node publishes a frame's events first)."""
    h.wait_for(lambda: any(stamp_to_ns(m.header.stamp) == stamp_ns(i) for m in h.got["objects"]),
               f"the objects of frame {i}")


def events(h: NodeHarness) -> list[tuple[int, int, str]]:
    return [(e.event, e.track_id, e.query) for e in h.got["events"]]


def test_a_frame_arriving_while_the_track_joins_is_processed_and_published_once(node):
    """A camera callback that buffered its frame just before the new track joined: the frame is tracked
    once and published once (the old session caught the new track up on it, then stepped it again)."""
    buffer_frames(node, 0, 6)
    buffer = node.node.session.buffer
    snapshot, replied = threading.Event(), threading.Event()
    push, window = buffer.push, buffer.window

    def hooked_window(*args, **kwargs):
        frames = window(*args, **kwargs)
        snapshot.set()
        return frames

    def hooked_push(header, stamp, rgb):
        result = push(header, stamp, rgb)
        if stamp == stamp_ns(6):
            replied.wait(60)  # this callback is slow: its frame is in the buffer, the rest waits
        return result

    buffer.window, buffer.push = hooked_window, hooked_push
    try:
        future = node.segment_client.call_async(Segment.Request(query=QUERY))
        node.wait_for(snapshot.is_set, "the grounding window snapshot")
        node.image_pub.publish(image_msg(6))
        node.wait_for(future.done, "the reply")
        replied.set()
        node.wait_for(lambda: stamp_ns(6) in [stamp_to_ns(m.header.stamp) for m in node.got["objects"]],
                      "frame 6's output")
    finally:
        replied.set()
        buffer.window, buffer.push = window, push
    assert future.result().success
    node.send(image_msg(7))  # a sentinel: once its output is out, everything about frame 6 is too
    node.wait_for(lambda: stamp_ns(7) in [stamp_to_ns(m.header.stamp) for m in node.got["objects"]], "frame 7")
    assert [stamp_to_ns(m.header.stamp) for m in node.got["objects"]] == [stamp_ns(6), stamp_ns(7)]


@pytest.mark.parametrize("node", [dict(presence_threshold=0.99999, lost_after_frames=1, num_frames=2)],
                         indirect=True)
def test_lost_during_the_catch_up_is_published_after_started(node):
    buffer_frames(node, 0, 8)  # prompts on frames 0 and 7; frames 1-6 are tracked and all 'not seen'
    r = node.segment(QUERY)
    assert r.success and not r.object.visible
    node.wait_for(lambda: len(node.got["events"]) >= 2, "STARTED and LOST")
    assert events(node)[:2] == [(TrackEvent.STARTED, r.track_id, QUERY), (TrackEvent.LOST, r.track_id, QUERY)]
    lost = node.got["events"][1]
    assert stamp_to_ns(lost.header.stamp) in {stamp_ns(i) for i in range(8)}  # on the frame where it happened


@pytest.mark.parametrize("node", [dict(max_queued_requests=16)], indirect=True)
def test_twenty_requests_at_once_are_all_answered_and_waiting_ones_hold_no_thread(node):
    buffer_frames(node, 0, 4)
    with node.hold_grounding() as hold:
        futures = [node.segment_client.call_async(Segment.Request(query=f"object {k}", track=False))
                   for k in range(20)]
        node.wait_for(hold.entered.is_set, "the first grounding to start")
        node.wait_for(lambda: sum(f.done() for f in futures) == 3, "three busy replies")
        busy = [f.result() for f in futures if f.done()]
        assert all(not r.success and r.message.startswith("busy") for r in busy)
        assert node.node.worker.queue_length() == 16
        # 16 requests wait and one runs: the executor still serves everything else
        state = node.client.create_client(GetState, f"/{node.node.get_name()}/get_state")
        assert node.call(state, GetState.Request(), timeout=30).current_state.label == "active"
        assert node.stop(0).success
        assert node.node.trigger_deactivate().name == "SUCCESS"
        assert node.node.trigger_cleanup().name == "SUCCESS"  # answers the 17 under way
    node.wait_for(lambda: all(f.done() for f in futures), "all twenty replies")
    replies = [f.result() for f in futures]
    cleaned = [r for r in replies if "cleaned up" in r.message]
    assert len(cleaned) == 17 and not any(r.success or "internal error" in r.message for r in replies)


@pytest.mark.parametrize("node", [dict(max_queued_requests=1)], indirect=True)
def test_queue_ms_is_the_time_a_request_waited(node):
    buffer_frames(node, 0, 4)
    with node.hold_grounding() as hold:
        first = node.segment_client.call_async(Segment.Request(query="the cup", track=False))
        node.wait_for(hold.entered.is_set, "the first grounding to start")
        second = node.segment_client.call_async(Segment.Request(query="the bowl", track=False))
        node.wait_for(lambda: node.node.worker.queue_length() == 1, "the second request to wait")
        time.sleep(0.5)  # it waits at least this long
        hold.release.set()
        node.wait_for(lambda: first.done() and second.done(), "both replies", timeout=120)
    a, b = first.result(), second.result()
    assert a.success and b.success
    assert b.timing.queue_ms >= 500 and a.timing.queue_ms < b.timing.queue_ms
    assert b.timing.total_ms >= b.timing.queue_ms


def test_cleanup_during_a_grounding_answers_cleanly_and_stops_every_track(node):
    buffer_frames(node, 0, 4)
    tracked = node.segment(QUERY)
    assert tracked.success
    node.wait_for(node.idle, "the track to join")
    with node.hold_grounding() as hold:
        pending = node.segment_client.call_async(Segment.Request(query="the bowl"))
        node.wait_for(hold.entered.is_set, "the grounding to start")
        assert node.node.trigger_deactivate().name == "SUCCESS"
        assert node.node.trigger_cleanup().name == "SUCCESS"
    node.wait_for(pending.done, "the reply")
    reply = pending.result()
    assert not reply.success and "cleaned up" in reply.message and "internal error" not in reply.message
    node.wait_for(lambda: (TrackEvent.STOPPED, tracked.track_id, QUERY) in events(node), "STOPPED at cleanup")


def test_track_ids_stay_unique_across_cleanups(node):
    buffer_frames(node, 0, 4)
    first = node.segment(QUERY).track_id
    assert node.node.trigger_deactivate().name == "SUCCESS"
    assert node.node.trigger_cleanup().name == "SUCCESS"
    node.start()
    buffer_frames(node, 10, 14)
    second = node.segment(QUERY).track_id
    assert first >= 1 and second > first


@pytest.mark.parametrize("node", [dict(presence_threshold=1.0)], indirect=True)
def test_presence_parameters_are_live_and_the_range_ends_are_accepted(node):
    """Configured with presence_threshold 1.0 (an end of its declared range); then changed while tracking."""
    buffer_frames(node, 0, 4)
    r = node.segment(QUERY)
    node.wait_for(node.idle, "the track to join")
    base = len(node.got["events"])
    results = node.node.set_parameters([Parameter("presence_threshold", value=0.0),
                                        Parameter("found_after_frames", value=3)])
    assert all(x.successful for x in results)
    # with 1.0 every tracked frame is 'not seen': the track is lost (lost_after_frames 10 by default)...
    node.node.set_parameters([Parameter("presence_threshold", value=1.0), Parameter("lost_after_frames", value=2)])
    node.track_frames(4, 6)
    # events reach this observer after the worker is idle: wait for them, and for the frame's outputs
    lost = [(TrackEvent.LOST, r.track_id)]
    node.wait_for(lambda: [e[:2] for e in events(node)[base:]] == lost, "LOST after 2 frames")
    wait_outputs(node, 5)
    assert [e[:2] for e in events(node)[base:]] == lost  # after exactly 2 frames: lost_after_frames is live
    node.node.set_parameters([Parameter("presence_threshold", value=0.0)])
    node.track_frames(6, 8)
    wait_outputs(node, 7)
    assert [e[:2] for e in events(node)[base:]] == lost  # found_after_frames 3: not yet
    node.track_frames(8, 9)
    found = lost + [(TrackEvent.FOUND, r.track_id)]
    node.wait_for(lambda: [e[:2] for e in events(node)[base:]] == found, "FOUND on the third seen frame")


def test_stray_frames_neither_clear_nor_poison_the_buffer(node):
    buffer_frames(node, 0, 6)
    newest = stamp_ns(5)
    for stray in (image_msg(90, stamp=newest - 2 * NS), image_msg(91, stamp=newest + int(0.9 * NS)),
                  image_msg(92, size=(120, 160))):
        node.send(stray)
    node.publish_frames(6, 9)
    assert [f.stamp_ns for f in node.node.session.buffer.window()] == [stamp_ns(i) for i in range(9)]
    assert node.node._counts.get("image held", 0) == 3
    # a real clock reset: several consistent frames far in the past restart the buffer with them
    reset = [image_msg(k, stamp=stamp_ns(0) - 5 * NS + k * NS // 10) for k in range(3)]
    for msg in reset:
        node.send(msg)
    assert [f.stamp_ns for f in node.node.session.buffer.window()] == [stamp_to_ns(m.header.stamp) for m in reset]


@pytest.mark.parametrize("node", [dict(autostart=True)], indirect=True)
def test_autostart_configures_and_activates_once(node):
    node.wait_for(lambda: node.state() == "active", "autostart")
    assert node.node.trigger_deactivate().name == "SUCCESS"
    assert node.node.trigger_cleanup().name == "SUCCESS"
    assert node.node.trigger_configure().name == "SUCCESS"
    assert not node.node.active
    assert node.node.trigger_activate().name == "SUCCESS"  # a scripted activate works: nothing activated it


def test_the_process_exits_after_the_shutdown_transition(tiny_checkpoint, rclpy_context):
    env = local_ros_env()
    proc = subprocess.Popen([sys.executable, "-m", "sa2va_i_ros.ros.node_process", "--ros-args", "-r",
                             "__node:=exit_node", "-p", f"model:={tiny_checkpoint}", "-p", "autostart:=true"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    client = rclpy.create_node("exit_client", context=rclpy_context)
    executor = rclpy.executors.SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(client)
    try:
        from sa2va_i_ros.testing.node_client import call, spin_until

        get = client.create_client(GetState, "/exit_node/get_state")
        assert spin_until(executor, lambda: get.service_is_ready(), 60)
        assert spin_until(executor, lambda: call(executor, get, GetState.Request(), "get_state")
                          .current_state.label == "active", 60)
        change = client.create_client(ChangeState, "/exit_node/change_state")
        reply = call(executor, change, ChangeState.Request(transition=Transition(
            id=Transition.TRANSITION_ACTIVE_SHUTDOWN)), "shutdown")
        assert reply.success
        out, _ = proc.communicate(timeout=30)
    finally:
        executor.shutdown()
        client.destroy_node()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=20)
            pytest.fail(f"the node process was still running after shutdown:\n{out}")
    assert proc.returncode == 0 and "Traceback" not in out, out


def _truncate_a_shard(checkpoint, tmp_path):
    import shutil

    copy = tmp_path / "ckpt"
    shutil.copytree(checkpoint, copy)
    shard = sorted(copy.glob("*.safetensors"))[0]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    return copy


@pytest.mark.parametrize("failure", ["corrupt_shard", "import_error", "out_of_memory", "unexpected"])
def test_any_load_failure_leaves_the_node_unconfigured_with_the_reason(tiny_checkpoint, tmp_path, monkeypatch,
                                                                        failure):
    """A corrupt shard, a missing package, out of memory while loading, or a bug: configure fails with the
    reason, the node keeps answering, and a later configure works."""
    import torch

    import sa2va_i_ros.model.checkpoint.materialise as materialise
    import sa2va_i_ros.model.sa2va_model as sa2va_model
    import sa2va_i_ros.ros.model_loading as model_loading

    model, reason = tiny_checkpoint, ""
    if failure == "corrupt_shard":
        model, reason = _truncate_a_shard(tiny_checkpoint, tmp_path), "safetensors"
    elif failure == "import_error":
        monkeypatch.setattr(sa2va_model, "build_sam2", lambda *a, **k: (_ for _ in ()).throw(
            ImportError("No module named 'flash_attn'")))
        reason = "flash_attn"
    elif failure == "out_of_memory":
        def empty(shape, dtype, dev):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        monkeypatch.setattr(materialise, "empty", empty)
        reason = "out of memory"
    else:
        def broken_buffer(*args, **kwargs):
            raise RuntimeError("a bug while configuring")
        monkeypatch.setattr(model_loading, "FrameBuffer", broken_buffer)
        reason = "a bug while configuring"
    h = NodeHarness(model, name=f"load_{failure}")
    try:
        assert h.node.trigger_configure().name == "FAILURE"
        assert reason.lower() in h.node._model_state.lower() and "configure failed" in h.node._model_state
        r = h.segment(QUERY)  # the process is alive and answers
        assert not r.success and "not configured" in r.message
        monkeypatch.undo()
        h.node.set_parameters([Parameter("model", value=str(tiny_checkpoint))])
        h.start()
        buffer_frames(h, 0, 3)
        assert h.segment(QUERY).success
    finally:
        h.close()
