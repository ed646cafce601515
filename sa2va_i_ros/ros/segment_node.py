"""The segment node: a lifecycle node wiring ROS topics, services and the action to a ``PerceptionWorker``.

* configure: load the checkpoint (``model_loading``; any failure fails the
  transition with the reason logged; the node stays up and can be configured
  again), create the worker thread and the lifecycle publishers;
* activate: subscribe to ``image`` (+ ``depth`` and ``camera_info`` with
  ``use_depth``); the lifecycle publishers go live; deactivate: the reverse;
* cleanup/shutdown: the worker answers every request under way and sends
  STOPPED for every track, then the model is freed; after shutdown the process
  exits.

Callbacks never wait on the model: the image callback hands the frame to the
worker, requests are queued to it (services and the action are coroutines that
await its answer without holding an executor thread; ``replies`` converts
them), and the worker publishes what it produces through the node's
``FramePublisher``. Services ``~/segment`` and ``~/stop_tracking`` and the
action ``~/segment_and_track`` exist from start-up and answer with a clear
message while the node is not active. Every output carries the source frame's
header.
"""

from __future__ import annotations

import contextlib
import itertools
import time

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.task import Future
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

from sa2va_i_ros.action import SegmentAndTrack
from sa2va_i_ros.imaging.image_codec import ImageDecodeError
from sa2va_i_ros.ros import conversions as conv
from sa2va_i_ros.ros.callbacks import Counts, count_internal_error, guarded
from sa2va_i_ros.ros.camera_inputs import camera_qos, camera_subscriptions, depth_subscriptions
from sa2va_i_ros.ros.diagnostics import RateMeter, diagnostic_array, node_statuses
from sa2va_i_ros.ros.frame_publisher import FramePublisher
from sa2va_i_ros.ros.model_loading import SESSION_SETTINGS, free_memory, load_session
from sa2va_i_ros.ros.parameters import check_changes, declare_all, read_all
from sa2va_i_ros.ros.refusals import refusal
from sa2va_i_ros.ros.replies import fill_reply, fill_stopped, mark_cancelled, segment_request
from sa2va_i_ros.runtime.transport_gate import TransportGate
from sa2va_i_ros.runtime.warm_up import warm_up
from sa2va_i_ros.runtime.worker import PerceptionWorker
from sa2va_i_ros.srv import Segment, StopTracking

EXECUTOR_THREADS = 4
# Requests (services, action goals, results, cancels) are taken from DDS at once and queued in the worker or
# answered busy at once: the node's request readers keep ALL (reliable), so a burst larger than any depth is
# never overwritten before the node takes it (KEEP_LAST 100 lost 62 of 200 requests from 10 clients); DDS
# bounds what waits by its resource limits, and reliable writers wait for room rather than drop. Replies use
# the same profile: a reply is never overwritten before the client acknowledged it.
REQUEST_QOS = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)


def make_executor(context=None) -> MultiThreadedExecutor:
    """The executor the node runs in (tests use this one too: production thread count)."""
    return MultiThreadedExecutor(num_threads=EXECUTOR_THREADS, context=context)


class SegmentNode(LifecycleNode):
    """Lifecycle transitions, subscriptions, services and the action; outputs go out through ``frame_publisher``."""

    def __init__(self, name: str = "sa2va_i", **kwargs):
        super().__init__(name, **kwargs)
        declare_all(self)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.worker = None
        self.session = None
        self.active = False  # requests are served only while active
        self.exit_requested = Future()  # done after the shutdown transition: main() exits
        self._track_ids = itertools.count(1)  # unique for the node's lifetime, across cleanups
        self._subs: list = []
        self._gate: TransportGate | None = None  # image_transport both: the first copy of a frame wins
        self._counts = Counts()  # image callbacks, the worker's faults and bugs add; /diagnostics reads a copy
        self.images_received = 0  # image callbacks done (whatever became of the image)
        # (stamp_ns, monotonic time) of the newest frame the image callback handed to the worker: recorded here,
        # not on the worker thread, so /diagnostics sees it advance during a long worker step
        self.newest_in: tuple[int, float] | None = None
        self._in_rate = RateMeter()
        self._model_state = self._loaded_summary = "unconfigured"
        self._goals: dict[bytes, object] = {}  # action goal id -> worker ticket (for cancel)
        self._frames_group = MutuallyExclusiveCallbackGroup()
        self._depth_group = MutuallyExclusiveCallbackGroup()  # never starved by the image callback
        self._requests_group = ReentrantCallbackGroup()
        self._diag_group = MutuallyExclusiveCallbackGroup()
        self.create_service(Segment, "~/segment", self._on_segment, qos_profile=REQUEST_QOS,
                            callback_group=self._requests_group)
        self.create_service(StopTracking, "~/stop_tracking", self._on_stop, qos_profile=REQUEST_QOS,
                            callback_group=self._requests_group)
        self._action = ActionServer(self, SegmentAndTrack, "~/segment_and_track", self._on_action,
                                    goal_callback=lambda goal: GoalResponse.ACCEPT,
                                    cancel_callback=self._on_cancel, callback_group=self._requests_group,
                                    goal_service_qos_profile=REQUEST_QOS, result_service_qos_profile=REQUEST_QOS,
                                    cancel_service_qos_profile=REQUEST_QOS)
        # ~/events and ~/markers now, the data topics on configure; the worker publishes through it
        self.frame_publisher = FramePublisher(self, self._count)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(self.get_parameter("diagnostics_period").value, self._publish_diagnostics,
                                             callback_group=self._diag_group)
        if self.get_parameter("autostart").value:
            self._autostart = self.create_timer(0.0, self._start_once)

    def _start_once(self) -> None:
        """configure + activate, once (later transitions are the user's)."""
        self.destroy_timer(self._autostart)
        if self.trigger_configure().name == "SUCCESS":
            self.trigger_activate()

    # -- lifecycle ------------------------------------------------------------------------------
    def on_configure(self, state) -> TransitionCallbackReturn:
        p = read_all(self)
        self._model_state = "loading"
        try:
            loaded = load_session(p, self._track_ids)
        except Exception as exc:  # anything (ImportError, out of memory, a bug): unconfigured, with the reason
            # one ERROR line with the reason and the parameter to change; the same text on /diagnostics
            self._model_state = refusal("configure", exc, p)
            self.get_logger().error(self._model_state)
            free_memory()
            return TransitionCallbackReturn.FAILURE
        self.session = loaded.session
        self.worker = PerceptionWorker(loaded.session, self.frame_publisher)
        self.worker.on_fault = self._on_worker_fault  # also ERROR on /diagnostics until the next good step
        self._model_state = self._loaded_summary = loaded.summary
        self.get_logger().info(self._model_state)
        self.frame_publisher.create_publishers()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        p = read_all(self)
        if p["warm_up"] and self.session is not None:  # the worker is idle: no camera, no request yet
            try:
                took = warm_up(self.session)
                self.get_logger().info(f"warm-up: grounding {took['grounding_s']:.2f} s, tracker "
                                       f"{took['tracking_s']:.2f} s")
            except Exception as exc:  # e.g. out of memory at this size: said now, the node still activates
                self.get_logger().error(f"warm-up failed: {exc!r}; the first query pays for the first calls")
                free_memory()
        try:
            self._subscribe(p)
        except Exception as exc:  # a topic name or QoS the middleware refuses, a bug: inactive, with the reason
            self._unsubscribe()
            self._model_state = refusal("activate", exc, p, stays="inactive")  # one ERROR line, on /diagnostics
            self.get_logger().error(self._model_state)
            return TransitionCallbackReturn.FAILURE
        self._model_state = self._loaded_summary
        self.active = True
        self.get_logger().info(f"active: image QoS {p['image_qos']}, transport {p['image_transport']}, "
                               f"depth {'on' if p['use_depth'] else 'off'}")
        return super().on_activate(state)  # the lifecycle publishers go live

    def _subscribe(self, p: dict) -> None:
        profile = camera_qos(p["image_qos"], p["image_queue_depth"])
        g, transport = self._frames_group, p["image_transport"]
        self._gate = TransportGate() if transport == "both" else None
        self._subs = camera_subscriptions(self, transport, self._on_image, profile, g)
        self.frame_publisher.start(p["use_depth"], p["depth_sync_tolerance"], p["depth_wait"])
        if p["use_depth"]:
            d = self._depth_group
            self._subs += [*depth_subscriptions(self, transport, self._on_depth, profile, d),
                           self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, 10,
                                                    callback_group=d),
                           self.create_timer(0.02, self._expire_pending, callback_group=d)]

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self.active = False
        self._unsubscribe()
        self.frame_publisher.stop(self._newest_header())
        return super().on_deactivate(state)

    def _unsubscribe(self) -> None:
        for entity in self._subs:
            if hasattr(entity, "cancel"):
                self.destroy_timer(entity)
            else:
                self.destroy_subscription(entity)
        self._subs = []

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._release("the node was cleaned up")
        self._model_state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self._release("the node is shutting down")
        self._model_state = "shut down"
        self.exit_requested.set_result(True)
        return TransitionCallbackReturn.SUCCESS

    def _release(self, reason: str) -> None:
        """Answer every request under way, STOPPED for every track, then drop the model: at once, or, when
        the step under way outlives the wait, as it ends (never under a running step)."""
        self.active = False
        self.newest_in = None
        worker, self.worker, self.session = self.worker, None, None
        # STOPPED (and DELETE markers) per track
        ended = worker is None or worker.close(f"{reason} while this request was served", then=free_memory)
        if not ended:
            self.get_logger().warning("a model step outlived the shutdown wait: it was asked to stop, and the "
                                      "model's memory goes back when it ends")
        self.frame_publisher.release(self._newest_header(worker))
        del worker  # the last reference: the worker and its loop hold each other, free_memory collects them
        if ended:
            free_memory()

    def destroy_node(self) -> None:
        """Leave the graph and close the DDS participant now: rclpy leaves the action server and the lifecycle
        state machine, which hold the node's handle (a pytest process piled up participants until its
        subprocesses' nodes no longer heard it: test_node_destroy.py)."""
        self.frame_publisher.queue.drain(1.0)
        self.frame_publisher.queue.close()  # its thread holds the node
        self._action.destroy()
        super().destroy_node()
        self._state_machine.destroy_when_not_in_use()

    def _newest_header(self, worker=None) -> Header:
        """The newest camera frame's header (for DELETE markers sent between frames)."""
        worker = worker or self.worker
        header = worker.newest_header if worker is not None else None
        return conv.copy_header(header) if header is not None else Header()

    # -- parameters -----------------------------------------------------------------------------
    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        why = check_changes(read_all(self), [(prm.name, prm.value) for prm in params])
        if why:
            return SetParametersResult(successful=False, reason=why)
        worker = self.worker
        if worker is not None:
            changes = {prm.name: prm.value for prm in params if prm.name in SESSION_SETTINGS}
            if changes:
                worker.update(**changes)
        return SetParametersResult(successful=True)

    def _on_worker_fault(self, message: str) -> None:
        """A fault the worker contained (a request or a track ended by an exception): logged (worker thread)."""
        self.get_logger().error(message)

    # -- inputs ---------------------------------------------------------------------------------
    def _count(self, what: str, message: str) -> None:
        n = self._counts.add(what)
        self.get_logger().warning(f"{message} (x{n})", throttle_duration_sec=5.0)

    @guarded
    def _on_camera_info(self, msg: CameraInfo) -> None:
        self.frame_publisher.camera_info = msg

    @guarded
    def _on_depth(self, msg) -> None:
        self.frame_publisher.add_depth(msg)

    @guarded
    def _expire_pending(self) -> None:
        self.frame_publisher.expire()

    @guarded
    def _on_image(self, msg, decode) -> None:
        """A colour frame from any transport; ``decode(msg)`` gives its RGB (raw: a view, compressed: decoded).
        ``images_received`` counts it once the callback is done with it (buffered, counted as dropped, ...)."""
        try:
            self._take_image(msg, decode)
        finally:
            self.images_received += 1

    def _take_image(self, msg, decode) -> None:
        worker = self.worker
        if not self.active or worker is None:
            return
        t0 = time.perf_counter()
        stamp = conv.stamp_to_ns(msg.header.stamp)
        gate = self._gate
        if gate is not None and gate.taken(stamp):  # the other transport's copy of this frame came first
            return
        self._in_rate.tick()
        try:
            rgb = decode(msg)
        except ImageDecodeError as exc:
            self._count(f"image {type(exc).__name__}", f"image dropped: {exc}")
            return
        try:
            result = worker.offer_frame(conv.copy_header(msg.header), stamp, rgb)
        except ValueError as exc:
            self._count("image rejected", f"image dropped: {exc}")
            return
        if result.pushed:
            self.newest_in = (result.pushed[-1].stamp_ns, time.monotonic())
        if gate is not None and (result.push.accepted or result.push.code == "held"):
            gate.take(stamp)  # buffered, or held by the stamp gate: another copy would only repeat it
        if result.clock_reset:
            self.get_logger().warning(f"image stamps jumped back: {result.push.reason}")
            self.frame_publisher.restart()
        elif result.push.code == "held":  # not dropped: buffered once the change is confirmed (or discarded)
            self._counts.add("image held")
            self.get_logger().info(f"image held: {result.push.reason}", throttle_duration_sec=5.0)
        elif not result.push.accepted:
            self._count(f"image {result.push.code}", f"image dropped: {result.push.reason}")
        elif result.push.code == "size_change":
            self.get_logger().warning(result.push.reason)
        if result.frame is not None:
            self.frame_publisher.note_callback(result.frame.stamp_ns, (time.perf_counter() - t0) * 1e3)

    # -- requests -------------------------------------------------------------------------------
    def _future(self) -> Future:
        """A future the worker may complete from its thread; completing it wakes the executor."""
        future = Future(executor=self.executor)
        future.add_done_callback(lambda _: None)  # scheduling this callback is what wakes the executor
        return future

    def _not_serving(self) -> str:
        state = "not configured" if self.worker is None else "not active"
        return f"the node is {state}: configure and activate it first"

    @guarded
    async def _on_segment(self, request: Segment.Request, response: Segment.Response) -> Segment.Response:
        worker = self.worker
        if not self.active or worker is None:
            response.success, response.message = False, self._not_serving()
            return response
        answered = self._future()
        worker.submit(segment_request(request), on_reply=answered.set_result)
        reply = await answered
        fill_reply(response, reply, with_masks=request.with_masks)
        if reply.success:
            self.get_logger().info(f"segment {request.query[:80]!r}: track {reply.track_ids or 0}")
        else:  # (rclpy ties a severity to each call site)
            self.get_logger().warning(f"segment {request.query[:80]!r} refused: {reply.message}")
        return response

    def _on_cancel(self, goal_handle) -> CancelResponse:
        ticket = self._goals.get(bytes(goal_handle.goal_id.uuid))
        worker = self.worker
        if ticket is not None and worker is not None:
            worker.cancel(ticket)
        return CancelResponse.ACCEPT

    async def _on_action(self, goal_handle):
        try:
            return await self._run_action(goal_handle)
        except Exception as exc:  # as guarded(): the node survives, the goal is aborted with the reason
            count_internal_error(self, "segment_and_track", exc)
            goal_handle.abort()
            return SegmentAndTrack.Result(success=False, message=f"internal error: {exc!r}")

    async def _run_action(self, goal_handle):
        worker, result = self.worker, SegmentAndTrack.Result()
        if not self.active or worker is None:
            result.success, result.message = False, self._not_serving()
            goal_handle.abort()
            return result

        answered: list[int] = []  # the request's tracks, once answered (feedback carries them from then on)

        def progress(stage: str, fraction: float, detail: str) -> None:
            goal_handle.publish_feedback(SegmentAndTrack.Feedback(stage=stage, progress=float(fraction),
                                                                  detail=detail, track_ids=answered))

        finished = self._future()
        key = bytes(goal_handle.goal_id.uuid)
        self._goals[key] = ticket = worker.submit(segment_request(goal_handle.request),
                                                  on_reply=lambda r: answered.extend(r.track_ids),
                                                  on_done=finished.set_result, progress=progress)
        if goal_handle.is_cancel_requested:  # cancelled before the ticket was known
            worker.cancel(ticket)
        try:
            reply = await finished
        finally:
            self._goals.pop(key, None)
        fill_reply(result, reply, with_masks=goal_handle.request.with_masks)
        if goal_handle.is_cancel_requested:
            for track_id in reply.track_ids if reply.success else ():  # they joined just before the cancel: undo
                with contextlib.suppress(ValueError):  # already stopped                      (STOPPED is sent)
                    worker.stop(track_id)
            mark_cancelled(result, reply)
            goal_handle.canceled()
        elif reply.success:
            goal_handle.succeed()
        else:
            goal_handle.abort()
        return result

    @guarded
    def _on_stop(self, request: StopTracking.Request, response: StopTracking.Response):
        worker = self.worker
        if worker is None:
            response.success, response.message = False, "the node is not configured"
            return response
        try:
            stopped = worker.stop(int(request.track_id))
        except ValueError as exc:
            response.success, response.message = False, str(exc)
            return response
        fill_stopped(response, stopped)
        return response

    # -- diagnostics ----------------------------------------------------------------------------
    @guarded
    def _publish_diagnostics(self) -> None:
        statuses = node_statuses(self.get_fully_qualified_name(), self.worker, model_state=self._model_state,
                                 active=self.active, in_rate=self._in_rate.rate(), input_counts=self._counts.snapshot(),
                                 images_received=self.images_received, frames=self.frame_publisher,
                                 newest_in=self.newest_in if self.worker is not None else None)
        self._diag_pub.publish(diagnostic_array(self.get_clock().now().to_msg(), statuses))

