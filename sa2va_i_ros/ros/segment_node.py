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

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.task import Future
from std_msgs.msg import Header

from sa2va_i_ros.action import SegmentAndTrack
from sa2va_i_ros.ros import conversions as conv
from sa2va_i_ros.ros.callbacks import Counts, count_internal_error, guarded
from sa2va_i_ros.ros.camera_io import CameraIO
from sa2va_i_ros.ros.diagnostics import diagnostic_array, node_statuses
from sa2va_i_ros.ros.frame_publisher import FramePublisher
from sa2va_i_ros.ros.model_loading import SESSION_SETTINGS, free_memory, load_session
from sa2va_i_ros.ros.parameters import camera_names, check_changes, declare_all, read_all
from sa2va_i_ros.ros.refusals import refusal
from sa2va_i_ros.ros.replies import fill_reply, fill_stopped, mark_cancelled, segment_request
from sa2va_i_ros.runtime.warm_up import warm_up
from sa2va_i_ros.runtime.worker import PerceptionWorker
from sa2va_i_ros.runtime.worker.cameras import ALL, CameraWorkers
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
        self.workers: CameraWorkers | None = None  # one model, a worker per camera, while configured
        self.session = None  # the first camera's session (warm-up)
        self.active = False  # requests are served only while active
        self.exit_requested = Future()  # done after the shutdown transition: main() exits
        self._track_ids = itertools.count(1)  # unique for the node's lifetime, across cleanups and cameras
        self._counts = Counts()  # image callbacks, the worker's faults and bugs add; /diagnostics reads a copy
        self._model_state = self._loaded_summary = "unconfigured"
        self._goals: dict[bytes, object] = {}  # action goal id -> worker ticket (for cancel)
        frames, depth = MutuallyExclusiveCallbackGroup(), MutuallyExclusiveCallbackGroup()  # depth: never starved
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
        # per camera: ~/[<camera>/]events and markers now, the data topics on configure; its worker publishes there
        self.cameras = {name: CameraIO(self, name, frames, depth)
                        for name in camera_names(self.get_parameter("cameras").value)}
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
            loaded = load_session(p, self._track_ids, list(self.cameras))
        except Exception as exc:  # anything (ImportError, out of memory, a bug): unconfigured, with the reason
            # one ERROR line with the reason and the parameter to change; the same text on /diagnostics
            self._model_state = refusal("configure", exc, p)
            self.get_logger().error(self._model_state)
            free_memory()
            return TransitionCallbackReturn.FAILURE
        self.session = loaded.session
        self.workers = CameraWorkers(loaded.sessions, {c: io.frame_publisher for c, io in self.cameras.items()})
        for name, io in self.cameras.items():
            io.worker = self.workers[name]
            io.worker.on_fault = self._on_worker_fault  # also ERROR on /diagnostics until the next good step
            io.frame_publisher.create_publishers()
        self._model_state = self._loaded_summary = loaded.summary
        self.get_logger().info(self._model_state)
        return TransitionCallbackReturn.SUCCESS

    @property
    def worker(self) -> PerceptionWorker | None:
        """The default (first) camera's worker while configured."""
        return next(iter(self.cameras.values())).worker

    @property
    def frame_publisher(self) -> FramePublisher:
        """The default (first) camera's outputs."""
        return next(iter(self.cameras.values())).frame_publisher

    @property
    def images_received(self) -> int:
        return sum(io.images_received for io in self.cameras.values())

    @property
    def newest_in(self) -> tuple[int, float] | None:
        """The default camera's newest frame handed to its worker: (stamp_ns, monotonic time)."""
        return next(iter(self.cameras.values())).newest_in

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
                               f"depth {'on' if p['use_depth'] else 'off'}"
                               + (f", cameras {', '.join(self.cameras)}" if len(self.cameras) > 1 else ""))
        return super().on_activate(state)  # the lifecycle publishers go live

    def _subscribe(self, p: dict) -> None:
        for io in self.cameras.values():
            io.subscribe(p)

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self.active = False
        self._unsubscribe()
        for io in self.cameras.values():
            io.frame_publisher.stop(self._newest_header(io.worker))
        return super().on_deactivate(state)

    def _unsubscribe(self) -> None:
        for io in self.cameras.values():
            io.unsubscribe()

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
        workers, self.workers, self.session = self.workers, None, None
        newest = {}
        for name, io in self.cameras.items():
            newest[name], io.worker, io.newest_in = self._newest_header(io.worker), None, None
        # STOPPED (and DELETE markers) per track
        ended = workers is None or workers.close(f"{reason} while this request was served", then=free_memory)
        if not ended:
            self.get_logger().warning("a model step outlived the shutdown wait: it was asked to stop, and the "
                                      "model's memory goes back when it ends")
        for name, io in self.cameras.items():
            io.frame_publisher.release(newest[name])
        del workers  # the last reference: the workers and their loops hold each other, free_memory collects them
        if ended:
            free_memory()

    def destroy_node(self) -> None:
        """Leave the graph and close the DDS participant now: rclpy leaves the action server and the lifecycle
        state machine, which hold the node's handle (a pytest process piled up participants until its
        subprocesses' nodes no longer heard it: test_node_destroy.py)."""
        for io in self.cameras.values():
            io.frame_publisher.queue.drain(1.0)
            io.frame_publisher.queue.close()  # its thread holds the node
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
        workers = self.workers
        if workers is not None:
            changes = {prm.name: prm.value for prm in params if prm.name in SESSION_SETTINGS}
            if changes:
                workers.update(**changes)
        return SetParametersResult(successful=True)

    def _on_worker_fault(self, message: str) -> None:
        """A fault the worker contained (a request or a track ended by an exception): logged (worker thread)."""
        self.get_logger().error(message)

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
        workers = self.workers
        if not self.active or workers is None:
            response.success, response.message = False, self._not_serving()
            return response
        answered = self._future()
        workers.submit(request.camera, segment_request(request), on_reply=answered.set_result)
        fill_reply(response, await answered, with_masks=request.with_masks)
        if response.success:
            self.get_logger().info(f"segment {request.query[:80]!r}: track {list(response.track_ids) or 0}")
        else:  # (rclpy ties a severity to each call site)
            self.get_logger().warning(f"segment {request.query[:80]!r} refused: {response.message}")
        return response

    def _on_cancel(self, goal_handle) -> CancelResponse:
        tickets = self._goals.get(bytes(goal_handle.goal_id.uuid))
        workers = self.workers
        if tickets is not None and workers is not None:
            workers.cancel(tickets)
        return CancelResponse.ACCEPT

    async def _on_action(self, goal_handle):
        try:
            return await self._run_action(goal_handle)
        except Exception as exc:  # as guarded(): the node survives, the goal is aborted with the reason
            count_internal_error(self, "segment_and_track", exc)
            goal_handle.abort()
            return SegmentAndTrack.Result(success=False, message=f"internal error: {exc!r}")

    async def _run_action(self, goal_handle):
        workers, result = self.workers, SegmentAndTrack.Result()
        if not self.active or workers is None:
            result.success, result.message = False, self._not_serving()
            goal_handle.abort()
            return result

        answered: list[int] = []  # the request's tracks, once answered (feedback carries them from then on)

        def progress(stage: str, fraction: float, detail: str) -> None:
            goal_handle.publish_feedback(SegmentAndTrack.Feedback(stage=stage, progress=float(fraction),
                                                                  detail=detail, track_ids=answered))

        finished = self._future()
        key = bytes(goal_handle.goal_id.uuid)
        self._goals[key] = tickets = workers.submit(
            goal_handle.request.camera, segment_request(goal_handle.request),
            on_reply=lambda replies: answered.extend(i for r in replies.values() for i in r.track_ids),
            on_done=finished.set_result, progress=progress)
        if goal_handle.is_cancel_requested:  # cancelled before the tickets were known
            workers.cancel(tickets)
        try:
            replies = await finished
        finally:
            self._goals.pop(key, None)
        fill_reply(result, replies, with_masks=goal_handle.request.with_masks)
        if goal_handle.is_cancel_requested:
            for track_id in result.track_ids if result.success else ():  # they joined just before the cancel: undo
                with contextlib.suppress(ValueError):  # already stopped                      (STOPPED is sent)
                    workers.stop(track_id)
            mark_cancelled(result)
            goal_handle.canceled()
        elif result.success:
            goal_handle.succeed()
        else:
            goal_handle.abort()
        return result

    @guarded
    def _on_stop(self, request: StopTracking.Request, response: StopTracking.Response):
        workers = self.workers
        if workers is None:
            response.success, response.message = False, "the node is not configured"
            return response
        try:
            stopped = workers.stop(int(request.track_id), request.camera or ALL)
        except ValueError as exc:
            response.success, response.message = False, str(exc)
            return response
        fill_stopped(response, stopped)
        return response

    # -- diagnostics ----------------------------------------------------------------------------
    @guarded
    def _publish_diagnostics(self) -> None:
        name, statuses = self.get_fully_qualified_name(), []
        for camera, io in self.cameras.items():  # one set of statuses per camera (the model's repeats)
            statuses += node_statuses(f"{name}/{camera}" if camera else name, io.worker,
                                      model_state=self._model_state, active=self.active, in_rate=io.in_rate.rate(),
                                      input_counts=self._counts.snapshot(), images_received=io.images_received,
                                      frames=io.frame_publisher, newest_in=io.newest_in if io.worker else None)
        self._diag_pub.publish(diagnostic_array(self.get_clock().now().to_msg(), statuses))

