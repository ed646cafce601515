"""The node in an operator's hands (issue 22): diagnostics that mean what they say, warnings only for frames that
are dropped, and refused transitions that say which parameter to change. Production settings (node_harness)."""

from __future__ import annotations

import pytest
from node_harness import NodeHarness, image_msg, stamp_ns
from rclpy.serialization import serialize_message
from test_tracker_helpers import one_torch_thread  # noqa: F401  (autouse: one torch thread on a shared machine)

from sa2va_i_ros.ros.diagnostics import ERROR
from sa2va_i_ros.srv import Segment

pytestmark = pytest.mark.ros


class Recorder:
    """Stands in for the node's logger and records every line it is given (rclpy ties a severity to each
    call site, so one forwarding function could not log at several levels)."""

    def __init__(self, logger):
        self.logger, self.lines = logger, []

    def __getattr__(self, level):
        def log(message, **kw):
            self.lines.append((level, message))
            return True
        return log


def record_logs(node) -> Recorder:
    recorder = Recorder(node.get_logger())
    node.get_logger = lambda: recorder
    return recorder


def diag_values(h: NodeHarness, status: str) -> list[dict]:
    name = f"/{h.node.get_name()}: {status}"
    return [{kv.key: kv.value for kv in s.values} for m in list(h.got["diag"]) for s in m.status if s.name == name]


@pytest.fixture
def node(tiny_checkpoint):
    h = NodeHarness(tiny_checkpoint, name="operating", diagnostics_period=0.1)
    h.start()
    yield h
    h.close()


def test_newest_frame_on_diagnostics_advances_during_a_long_worker_step(node):
    """newest_stamp_ns froze while the worker was inside a long step (it was read from the worker's state)."""
    node.publish_frames(0, 4)
    node.wait_for(lambda: node.buffered() == 4, "frames buffered")
    with node.hold_grounding() as hold:
        reply = node.segment_client.call_async(Segment.Request(query="the cup", track=False))
        node.wait_for(hold.entered.is_set, "the grounding to start")
        node.publish_frames(4, 7)  # the worker is inside its step: it takes none of them
        node.got["diag"].clear()
        node.wait_for(lambda: any(v["newest_stamp_ns"] == str(stamp_ns(6)) for v in diag_values(node, "output")),
                      "/diagnostics to report the newest frame received during the step")
        assert any(v["worker_idle"] == "False" for v in diag_values(node, "output"))
        hold.release.set()
    node.wait_for(reply.done, "the reply")
    assert reply.result().success


def test_held_frames_are_not_reported_as_dropped(node):
    """A camera whose clock jumps: the first frames after the jump are held, then buffered once confirmed;
    no "image dropped" warning for them (there was one per held frame)."""
    logs = record_logs(node.node)
    node.publish_frames(0, 4)
    jump = stamp_ns(4) + 60 * 1_000_000_000
    for k in range(3):  # held, held, then the change is confirmed and all three enter the buffer
        node.send(image_msg(4 + k, stamp=jump + k * 100_000_000))
    node.wait_for(lambda: node.node.newest_in is not None and node.node.newest_in[0] == jump + 200_000_000,
                  "the three frames after the jump to be buffered")
    assert node.node._counts.get("image held") == 2
    assert not [m for level, m in logs.lines if "dropped" in m], logs.lines
    node.send(image_msg(9, stamp=jump + 200_000_000))  # a frame actually dropped (a duplicate) still warns
    assert any(level == "warning" and "image dropped" in m for level, m in logs.lines)


def test_a_refused_configure_logs_one_error_naming_the_parameter_and_diagnostics_says_the_same(tmp_path):
    h = NodeHarness(tmp_path / "no_such_checkpoint", name="refused", diagnostics_period=0.1)
    try:
        logs = record_logs(h.node)
        assert h.node.trigger_configure().name == "FAILURE"
        errors = [m for level, m in logs.lines if level == "error"]
        assert len(errors) == 1 and "\n" not in errors[0], errors
        assert "change parameter model" in errors[0] and "no_such_checkpoint" in errors[0]
        name = f"/{h.node.get_name()}: model"
        h.got["diag"].clear()
        h.wait_for(lambda: any(s.name == name for m in list(h.got["diag"]) for s in m.status), "/diagnostics")
        model = next(s for m in list(h.got["diag"]) for s in m.status if s.name == name)
        assert model.message == errors[0] and model.level == ERROR
    finally:
        h.close()


def test_replies_are_light_by_default_and_carry_masks_when_asked(node):
    """A default reply has ids, boxes, scores, the answer and timing (a screen or two on the CLI), no mask; the
    masks stay on ~/mask and ~/objects."""
    node.publish_frames(0, 6)
    node.wait_for(lambda: node.buffered() == 6, "frames buffered")
    light, full = node.segment("the cup", track=False), node.segment("the cup", track=False, with_masks=True)
    assert light.success and full.success
    assert len(light.object.mask.data) == 0 and light.object.area == full.object.area > 0
    assert light.object.bbox == full.object.bbox and light.answer == full.answer
    assert len(full.object.mask.data) == full.object.mask.width * full.object.mask.height > 0
    assert len(serialize_message(light)) < 1024 < len(serialize_message(full))
    r = node.segment("the cup")  # tracked: the topics carry its masks
    node.publish_frames(6, 8)
    node.wait_for(lambda: any(o.track_id == r.track_id for m in node.got["objects"] for o in m.objects), "outputs")
    obj = next(o for m in node.got["objects"] for o in m.objects if o.track_id == r.track_id)
    assert len(obj.mask.data) == obj.mask.width * obj.mask.height > 0


def test_a_refused_activate_logs_one_error_naming_the_parameter_then_activates_once_fixed(tiny_checkpoint,
                                                                                         monkeypatch):
    from sa2va_i_ros.ros import camera_io

    h = NodeHarness(tiny_checkpoint, name="refused_activate", diagnostics_period=0.1)
    original = camera_io.camera_subscriptions

    def refused(*args, **kwargs):
        raise ValueError("the middleware refused the subscription's QoS (image_qos, image_queue_depth)")

    try:
        assert h.node.trigger_configure().name == "SUCCESS"
        logs = record_logs(h.node)
        monkeypatch.setattr(camera_io, "camera_subscriptions", refused)
        assert h.node.trigger_activate().name != "SUCCESS"
        errors = [m for level, m in logs.lines if level == "error"]
        assert len(errors) == 1 and errors[0].startswith("activate failed, the node stays inactive"), errors
        assert "change parameter image_qos, image_queue_depth" in errors[0]
        name = f"/{h.node.get_name()}: model"
        h.got["diag"].clear()
        h.wait_for(lambda: any(s.name == name for m in list(h.got["diag"]) for s in m.status), "/diagnostics")
        model = next(s for m in list(h.got["diag"]) for s in m.status if s.name == name)
        assert model.message == errors[0] and model.level == ERROR
        monkeypatch.setattr(camera_io, "camera_subscriptions", original)
        assert h.node.trigger_activate().name == "SUCCESS" and "failed" not in h.node._model_state
    finally:
        h.close()
