"""The segment node: a lifecycle node wiring ROS topics, services and the action to a ``PerceptionWorker``.

* configure: load the checkpoint (any failure fails the transition with the
  reason logged; the node stays up and can be configured again), create the
  frame buffer, the session, the worker thread and the lifecycle publishers;
* activate: subscribe to ``image`` (+ ``depth`` and ``camera_info`` with
  ``use_depth``); the lifecycle publishers go live; deactivate: the reverse;
* cleanup/shutdown: the worker answers every request under way and sends
  STOPPED for every track, then the model is freed; after shutdown the process
  exits.

Callbacks never wait on the model: the image callback hands the frame to the
worker, requests are queued to it (services and the action are coroutines that
await its answer without holding an executor thread), and the worker publishes
what it produces through ``output``/``event``. Services ``~/segment`` and
``~/stop_tracking`` and the action ``~/segment_and_track`` exist from start-up
and answer with a clear message while the node is not active. Every output
carries the source frame's header.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import inspect
import itertools
import threading
import time
import traceback

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data, qos_profile_system_default
from rclpy.task import Future
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from sa2va_i_ros.action import SegmentAndTrack
from sa2va_i_ros.imaging.geometry import GeometryError
from sa2va_i_ros.imaging.image_codec import ImageDecodeError
from sa2va_i_ros.msg import Timing, TrackedObjectArray, TrackEvent
from sa2va_i_ros.ros import conversions as conv
from sa2va_i_ros.ros.camera_inputs import camera_subscriptions, depth_subscriptions
from sa2va_i_ros.ros.depth_pairing import DepthPairer
from sa2va_i_ros.ros.diagnostics import ERROR, OK, WARN, Percentiles, RateMeter, diagnostic_array, status
from sa2va_i_ros.ros.markers import MarkerBook
from sa2va_i_ros.ros.outputs import frame_messages
from sa2va_i_ros.ros.parameters import BY_NAME, check_together, check_value, declare_all, read_all
from sa2va_i_ros.runtime.frame_buffer import FrameBuffer
from sa2va_i_ros.runtime.session import SegmentRequest, Settings
from sa2va_i_ros.runtime.transport_gate import TransportGate
from sa2va_i_ros.srv import Segment, StopTracking

SESSION_SETTINGS = ("num_frames", "max_num_frames", "sampling", "prompt_frames", "max_query_chars",
                    "max_queued_requests", "max_tracks", "gap_policy", "max_new_tokens", "max_catch_up_sec",
                    "prefill_chunk_tokens", "vision_frames_per_step", "presence_threshold", "lost_after_frames",
                    "found_after_frames", "reground_after_sec", "reground_max_attempts", "reground_backoff",
                    "reground_window_sec", "sasasa2va_mode")
EVENT_KINDS = {"started": TrackEvent.STARTED, "lost": TrackEvent.LOST, "found": TrackEvent.FOUND,
               "stopped": TrackEvent.STOPPED, "regrounded": TrackEvent.REGROUNDED, "gave_up": TrackEvent.GAVE_UP}
EXECUTOR_THREADS = 4
# Requests are taken from DDS at once and queued in the worker (or answered busy), so the service queues
# only have to hold a burst: deep enough for several clients' largest bursts, none left unanswered.
REQUEST_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


def _tracker_settings(p: dict, device: str, dtype: str):
    """The tracker model and config the parameters ask for; ValueError for what cannot run here.

    Checked before the checkpoint loads: an unknown model, weights for the
    ``checkpoint`` tracker, reduced precision on a CPU, or a speed path this
    device lacks (compile, channels-last on a CPU; compile without triton).
    """
    import torch

    from sa2va_i_ros.model.device import resolve_dtype
    from sa2va_i_ros.tracking import TrackerChoice, TrackerConfig
    from sa2va_i_ros.tracking.fast import resolve_fast_paths

    choice = TrackerChoice(p["tracker_model"], p["tracker_weights"])
    auto = "float32" if p["tracker_backend"] == "onnxruntime" else dtype  # the exported graphs are float32
    tracker_dtype = resolve_dtype(auto if p["tracker_dtype"] == "auto" else p["tracker_dtype"], torch.device(device))
    fast = resolve_fast_paths(p["tracker_compile"], p["tracker_channels_last"], torch.device(device))
    off = [name for name, on in (("tracker_compile", fast.compile), ("tracker_channels_last", fast.channels_last))
           if p[name] and not on]
    if off:
        raise ValueError(f"{' and '.join(off)} cannot run on device {device} ({'; '.join(fast.notes)}): set "
                         f"{'them' if len(off) > 1 else 'it'} false")
    config = TrackerConfig(dtype=tracker_dtype, threshold=p["presence_threshold"], lost_after=p["lost_after_frames"],
                           found_after=p["found_after_frames"], compile=p["tracker_compile"],
                           channels_last=p["tracker_channels_last"], backend=p["tracker_backend"],
                           onnx_dir=p["tracker_onnx_dir"], preprocess=p["tracker_preprocess"])
    return choice, config


def make_executor(context=None) -> MultiThreadedExecutor:
    """The executor the node runs in (tests use this one too: production thread count)."""
    return MultiThreadedExecutor(num_threads=EXECUTOR_THREADS, context=context)


def guarded(callback):
    """Keep the node alive whatever a callback raises: log it, count it, answer what can be answered.

    An exception escaping a callback would stop rclpy's executor and with it the
    node; bad input is handled inside the callbacks, this is the last line for bugs.
    Works for plain and coroutine callbacks.
    """
    def fail(self, args, exc):
        if not self.context.ok():
            return None  # shutting down (SIGINT): publishers are already gone
        self._counts["internal errors"] = self._counts.get("internal errors", 0) + 1
        self.get_logger().error(f"{callback.__name__} failed: {exc!r}\n{traceback.format_exc()}")
        if len(args) == 2 and hasattr(args[1], "success"):  # a service: answer with the error
            args[1].success, args[1].message = False, f"internal error: {exc!r}"
            return args[1]
        return None

    if inspect.iscoroutinefunction(callback):
        @functools.wraps(callback)
        async def async_wrapper(self, *args):
            try:
                return await callback(self, *args)
            except Exception as exc:  # the node must survive anything a callback meets
                return fail(self, args, exc)
        return async_wrapper

    @functools.wraps(callback)
    def wrapper(self, *args):
        try:
            return callback(self, *args)
        except Exception as exc:  # the node must survive anything a callback meets
            return fail(self, args, exc)
    return wrapper


def while_up(method):
    """Publishing from the worker thread while the process shuts down (SIGINT) is dropped quietly."""
    @functools.wraps(method)
    def wrapper(self, *args):
        try:
            return method(self, *args)
        except Exception:
            if not self.context.ok():
                return None
            raise
    return wrapper


class SegmentNode(LifecycleNode):
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
        self._pubs: dict = {}
        self._camera_info: CameraInfo | None = None
        self._pairer = DepthPairer()
        self._use_depth = False
        self._gate: TransportGate | None = None  # image_transport both: the first copy of a frame wins
        self._markers = MarkerBook()
        self._out_lock = threading.Lock()  # the depth pairer: worker thread and depth callbacks
        self._counts: dict[str, int] = {}
        self.images_received = 0  # image callbacks done (whatever became of the image)
        self._in_rate, self._out_rate = RateMeter(), RateMeter()
        self._last_lag_ms = float("nan")
        self._last_output_ns = -1  # stamp of the newest objects message published (-1: none yet)
        self._callback_ms: dict[int, float] = {}  # stamp -> image callback time (decode + hand-over), recent
        self._overhead_ms = Percentiles()  # per published frame: its image callback + building its messages
        self._model_state = "unconfigured"
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
        self._events_pub = self.create_publisher(TrackEvent, "~/events", QoSProfile(depth=100))
        # a plain publisher, as ~/events: a track's DELETE markers must reach RViz whenever it ends (cleanup
        # and deactivate included), not only while the lifecycle publishers are active
        self._markers_pub = self.create_publisher(MarkerArray, "~/markers",
                                                  QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
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
            why = check_together(p)
            if why:
                raise ValueError(why)
            from sa2va_i_ros.grounding.kinds import load_grounding_engine
            from sa2va_i_ros.model.device import resolve_auto
            from sa2va_i_ros.runtime.session import Session
            from sa2va_i_ros.runtime.worker import PerceptionWorker

            device, dtype = resolve_auto(p["device"], p["dtype"])
            choice, tracker_config = _tracker_settings(p, device, dtype)  # refused before the model loads
            t0 = time.perf_counter()
            # Sa2VA / Sa2VA-i or SaSaSa2VA, by the checkpoint's config.json (model_type)
            engine = load_grounding_engine(p["model"], device=device, dtype=dtype,
                                           original_sam2=p["original_sam2"] or None,
                                           revision=p["model_revision"] or None, lm_devices=p["lm_devices"] or None,
                                           tracker=choice)
            buffer = FrameBuffer(max_frames=p["buffer_max_frames"], max_seconds=p["buffer_max_seconds"],
                                 max_bytes=p["buffer_max_megabytes"] << 20, downscale=p["buffer_downscale"] or None)
            session = Session(engine, buffer, tracker_config, Settings(**{k: p[k] for k in SESSION_SETTINGS}),
                              track_ids=self._track_ids, tracker_model=choice)
            if session.tracker.fast_paths.compile:
                session.tracker.warm_up()  # compiled here, not during the first query
        except Exception as exc:  # anything (ImportError, out of memory, a bug): unconfigured, with the reason
            self._model_state = f"configure failed: {exc!r}" if not str(exc) else f"configure failed: {exc}"
            self.get_logger().error(f"configure failed, node stays unconfigured: {self._model_state[18:]}")
            _free_memory()
            return TransitionCallbackReturn.FAILURE
        self.session = session
        self.worker = PerceptionWorker(session, self)
        self._model_state = (f"loaded {p['model']} ({engine.kind}) on {device}/{dtype} in "
                             f"{time.perf_counter() - t0:.1f} s; tracker {choice.model} in {tracker_config.dtype}"
                             .replace("torch.", ""))
        self.get_logger().info(self._model_state)
        # reliable and deep: when a track starts, the frames that arrived during grounding may come out in
        # one burst; a KEEP_LAST history shorter than that burst drops outputs a consumer has not acked
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self._pubs = {
            "objects": self.create_lifecycle_publisher(TrackedObjectArray, "~/objects", reliable),
            "mask": self.create_lifecycle_publisher(Image, "~/mask", reliable),
            "points": self.create_lifecycle_publisher(PointCloud2, "~/object_points", reliable),
            "overlay": self.create_lifecycle_publisher(Image, "~/overlay", reliable),
        }
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        p = read_all(self)
        qos = {"sensor_data": qos_profile_sensor_data, "system_default": qos_profile_system_default,
               "reliable": QoSProfile(depth=p["image_queue_depth"], reliability=ReliabilityPolicy.RELIABLE)}
        profile = qos[p["image_qos"]]
        if p["image_qos"] != "reliable":
            profile = QoSProfile(depth=p["image_queue_depth"], reliability=profile.reliability,
                                 durability=profile.durability, history=profile.history)
        g, transport = self._frames_group, p["image_transport"]
        self._gate = TransportGate() if transport == "both" else None
        self._subs = camera_subscriptions(self, transport, self._on_image, profile, g)
        if p["use_depth"]:
            self._pairer = DepthPairer(round(p["depth_sync_tolerance"] * 1e9), p["depth_wait"])
            d = self._depth_group
            self._subs += [*depth_subscriptions(self, transport, self._on_depth, profile, d),
                           self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, 10,
                                                    callback_group=d),
                           self.create_timer(0.02, self._expire_pending, callback_group=d)]
        self._use_depth = p["use_depth"]
        self.active = True
        self.get_logger().info(f"active: image QoS {p['image_qos']}, transport {transport}, "
                               f"depth {'on' if p['use_depth'] else 'off'}")
        return super().on_activate(state)  # the lifecycle publishers go live

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self.active = False
        for entity in self._subs:
            if hasattr(entity, "cancel"):
                self.destroy_timer(entity)
            else:
                self.destroy_subscription(entity)
        self._subs = []
        with self._out_lock:
            self._publish_ready(self._pairer.flush())
            self._publish_markers(self._markers.clear(self._newest_header()))  # no more outputs: RViz forgets
        return super().on_deactivate(state)

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
        """Answer every request under way, STOPPED for every track, then drop the model."""
        self.active = False
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.close(f"{reason} while this request was served")  # STOPPED (and DELETE markers) per track
        with self._out_lock:
            self._publish_markers(self._markers.clear(self._newest_header(worker)))
        self.session = None
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._pubs = {}
        self._pairer.clear()
        self._camera_info = None
        _free_memory()

    # -- parameters -----------------------------------------------------------------------------
    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        values = read_all(self)
        for prm in params:
            spec = BY_NAME.get(prm.name)
            if spec is None:
                continue
            why = check_value(spec, prm.value)
            if why:
                return SetParametersResult(successful=False, reason=why)
            values[prm.name] = prm.value
        why = check_together(values)
        if why:
            return SetParametersResult(successful=False, reason=why)
        worker = self.worker
        if worker is not None:
            changes = {prm.name: prm.value for prm in params if prm.name in SESSION_SETTINGS}
            if changes:
                worker.update(**changes)
        return SetParametersResult(successful=True)

    # -- inputs ---------------------------------------------------------------------------------
    def _count(self, what: str, message: str) -> None:
        self._counts[what] = self._counts.get(what, 0) + 1
        self.get_logger().warning(f"{message} (x{self._counts[what]})", throttle_duration_sec=5.0)

    @guarded
    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    @guarded
    def _on_depth(self, msg) -> None:
        with self._out_lock:
            self._publish_ready(self._pairer.add_depth(conv.stamp_to_ns(msg.header.stamp), msg))

    @guarded
    def _expire_pending(self) -> None:
        with self._out_lock:
            ready = self._pairer.expire()
            for _, depth in ready:
                if depth is None:
                    self._count("no depth", "no depth image within depth_sync_tolerance of a frame: no 3D output")
            self._publish_ready(ready)

    def _publish_ready(self, ready) -> None:
        for (out, rgb), depth_msg in ready:
            self._publish_frame(out, rgb, depth_msg)

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
        if gate is not None and (result.push.accepted or result.push.code == "held"):
            gate.take(stamp)  # buffered, or held by the stamp gate: another copy would only repeat it
        if result.clock_reset:
            self.get_logger().warning(f"image stamps jumped back: {result.push.reason}")
            with self._out_lock:
                self._publish_ready(self._pairer.flush())
                self._pairer.clear()
        elif not result.push.accepted:
            self._count(f"image {result.push.code}", f"image dropped: {result.push.reason}")
        elif result.push.code == "size_change":
            self.get_logger().warning(result.push.reason)
        if result.frame is not None:
            self._callback_ms[result.frame.stamp_ns] = (time.perf_counter() - t0) * 1e3
            while len(self._callback_ms) > 256:
                self._callback_ms.pop(next(iter(self._callback_ms)))

    # -- what the worker publishes (worker thread) -----------------------------------------------
    @while_up
    def output(self, out, frame) -> None:
        """A frame's objects: now, or once its depth image arrives (``use_depth``)."""
        t0 = time.perf_counter()
        rgb = None
        if self.get_parameter("publish_overlay").value and "overlay" in self._pubs \
                and self._pubs["overlay"].get_subscription_count() > 0:  # rendered only for subscribers
            rgb = _camera_rgb(frame)
        with self._out_lock:
            if self._use_depth:
                self._publish_ready(self._pairer.add_output(frame.stamp_ns, (out, rgb)))
            else:
                self._publish_frame(out, rgb, None)
        callback_ms = self._callback_ms.pop(frame.stamp_ns, None)
        if callback_ms is not None:
            self._overhead_ms.add(callback_ms + (time.perf_counter() - t0) * 1e3)

    @while_up
    def event(self, header, track_id: int, query: str, kind: str, score: float) -> None:
        header = conv.copy_header(header) if header is not None else Header()
        self._events_pub.publish(TrackEvent(header=header, track_id=track_id, query=query, event=EVENT_KINDS[kind],
                                            score=float(score)))
        if kind == "stopped":  # stopped, replaced, cleaned up: RViz forgets it even if no frame follows
            with self._out_lock:
                self._publish_markers(self._markers.stop(header, [track_id]))

    def _publish_markers(self, markers) -> None:
        if markers is not None:
            self._markers_pub.publish(markers)

    def _newest_header(self, worker=None) -> Header:
        """The newest camera frame's header (for DELETE markers sent between frames)."""
        worker = worker or self.worker
        header = worker.newest_header if worker is not None else None
        return conv.copy_header(header) if header is not None else Header()

    def _depth_for(self, depth_msg):
        """Depth (metres) and intrinsics for a frame, or (None, None) with the reason counted."""
        if depth_msg is None:
            return None, None
        if self._camera_info is None:
            self._count("no camera_info", "no camera_info received: 3D output skipped")
            return None, None
        try:
            return conv.any_to_depth(depth_msg), conv.camera_info_to_intrinsics(self._camera_info)
        except (ImageDecodeError, GeometryError) as exc:
            self._count(f"depth {type(exc).__name__}", f"depth unusable: {exc}")
            return None, None

    def _publish_frame(self, out, rgb, depth_msg=None) -> None:
        pubs = self._pubs
        if not pubs or not pubs["objects"].is_activated:
            return  # inactive (or cleaned up): lifecycle publishers would drop it anyway
        depth, intrinsics = self._depth_for(depth_msg)
        msgs = frame_messages(out, rgb, depth, intrinsics, self.get_parameter("max_points").value)
        for problem in msgs.problems:
            self._count("depth mismatch", problem)
        pubs["objects"].publish(msgs.objects)
        pubs["mask"].publish(msgs.mask)
        if msgs.points is not None:
            pubs["points"].publish(msgs.points)
        if msgs.overlay is not None:
            pubs["overlay"].publish(msgs.overlay)
        self._publish_markers(self._markers.frame(out.header, msgs.marked))
        self._out_rate.tick()
        self._last_output_ns = conv.stamp_to_ns(out.header.stamp)
        self._last_lag_ms = (self.get_clock().now().nanoseconds - conv.stamp_to_ns(out.header.stamp)) / 1e6

    # -- requests -------------------------------------------------------------------------------
    def _future(self) -> Future:
        """A future the worker may complete from its thread; completing it wakes the executor."""
        future = Future(executor=self.executor)
        future.add_done_callback(lambda _: None)  # scheduling this callback is what wakes the executor
        return future

    def _request(self, goal) -> SegmentRequest:
        return SegmentRequest(query=goal.query, num_frames=int(goal.num_frames), sampling=goal.sampling,
                              prompt_frames=goal.prompt_frames, track=bool(goal.track),
                              window_sec=float(goal.window_sec))

    def _not_serving(self) -> str:
        state = "not configured" if self.worker is None else "not active"
        return f"the node is {state}: configure and activate it first"

    def _fill(self, response, reply) -> None:
        response.success, response.message = reply.success, reply.message
        response.track_id = reply.track_id  # the first of track_ids
        response.track_ids = [int(i) for i in reply.track_ids]
        response.answer = reply.answer
        response.window_frames = reply.window_frames
        response.sampled_indices = [int(i) for i in reply.sampled_indices]
        response.sampled_stamps = [h.stamp for h in reply.sampled_headers]
        ids = list(reply.track_ids) + [0] * len(reply.objects)  # track false: objects without a track (id 0)
        response.objects = [conv.tracked_object_msg(o.header, i, o.query, o.score, o.visible, o.mask, None)
                            for i, o in zip(ids, reply.objects, strict=False)]
        if response.objects:
            response.object = response.objects[0]
        t = reply.timing_ms
        response.timing = Timing(queue_ms=t.get("queue", 0.0), preprocess_ms=t.get("preprocess", 0.0),
                                 language_ms=t.get("language", 0.0), decode_ms=t.get("decode", 0.0),
                                 propagate_ms=t.get("propagate", 0.0), total_ms=t.get("total", 0.0))

    @guarded
    async def _on_segment(self, request: Segment.Request, response: Segment.Response) -> Segment.Response:
        worker = self.worker
        if not self.active or worker is None:
            response.success, response.message = False, self._not_serving()
            return response
        answered = self._future()
        worker.submit(self._request(request), on_reply=answered.set_result)
        reply = await answered
        self._fill(response, reply)
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
            self._counts["internal errors"] = self._counts.get("internal errors", 0) + 1
            self.get_logger().error(f"segment_and_track failed: {exc!r}\n{traceback.format_exc()}")
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
        self._goals[key] = ticket = worker.submit(self._request(goal_handle.request),
                                                  on_reply=lambda r: answered.extend(r.track_ids),
                                                  on_done=finished.set_result, progress=progress)
        if goal_handle.is_cancel_requested:  # cancelled before the ticket was known
            worker.cancel(ticket)
        try:
            reply = await finished
        finally:
            self._goals.pop(key, None)
        self._fill(result, reply)
        if goal_handle.is_cancel_requested:
            for track_id in reply.track_ids if reply.success else ():  # they joined just before the cancel: undo
                with contextlib.suppress(ValueError):  # already stopped                      (STOPPED is sent)
                    worker.stop(track_id)
            result.success, result.message, result.track_id = False, reply.message or "cancelled", 0
            result.track_ids = []
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
        response.success, response.stopped_ids = True, stopped
        response.message = f"stopped {stopped}" if stopped else "nothing was tracked"
        return response

    # -- diagnostics ----------------------------------------------------------------------------
    @guarded
    def _publish_diagnostics(self) -> None:
        worker = self.worker
        name = self.get_fully_qualified_name()
        in_rate, out_rate = self._in_rate.rate(), self._out_rate.rate()
        counts = dict(worker.counts) if worker is not None else {}
        settled = self._settled(worker)
        statuses = [
            status(f"{name}: model", OK if worker else (ERROR if "failed" in self._model_state else WARN),
                   self._model_state, {"active": self.active}),
            status(f"{name}: input", OK if in_rate > 0 or not self.active else WARN,
                   f"{in_rate:.1f} frames/s", {"rate_hz": f"{in_rate:.2f}", **self._counts,
                                               **({"buffered": len(worker.session.buffer)} if worker else {})}),
            status(f"{name}: output", OK, f"{out_rate:.1f} frames/s",
                   {"rate_hz": f"{out_rate:.2f}", "stamp_lag_ms": f"{self._last_lag_ms:.1f}",
                    "overhead_ms_p50": f"{self._overhead_ms.get(0.5):.3f}",
                    "overhead_ms_p95": f"{self._overhead_ms.get(0.95):.3f}",
                    "grounding_running": worker.busy if worker else False,
                    "requests_waiting": worker.queue_length() if worker else 0,
                    "images_received": self.images_received, **settled, **counts}),
        ]
        if worker is not None:
            for track_id, query in worker.tracks.items():
                visible = worker.is_visible(track_id)
                attempts = worker.regrounder.plan.attempts(track_id)
                statuses.append(status(f"{name}: track {track_id}", OK if visible else WARN,
                                       "visible" if visible else "lost",
                                       {"query": query, "reground_misses": attempts}))
        self._diag_pub.publish(diagnostic_array(self.get_clock().now().to_msg(), statuses))

    def _settled(self, worker) -> dict:
        """How far the node got: the newest frame handed to the worker, whether the worker is done with it
        (idle), outputs still waiting for depth, and the newest objects message published. Read in this
        order, ``worker_idle`` true means every frame up to ``newest_stamp_ns`` is out, pending or dropped."""
        newest = worker.newest_header if worker is not None else None
        newest_ns = conv.stamp_to_ns(newest.stamp) if newest is not None else -1
        idle = worker.idle if worker is not None else False
        with self._out_lock:
            return {"newest_stamp_ns": newest_ns, "worker_idle": idle, "outputs_pending": len(self._pairer),
                    "last_output_stamp_ns": self._last_output_ns}

def _camera_rgb(frame) -> np.ndarray:
    """The frame at the camera's size (the buffer may hold a downscaled copy)."""
    from sa2va_i_ros.runtime.catch_up import resized

    return resized(frame.rgb, frame.size)


def _free_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def main(args=None) -> int:
    rclpy.init(args=args)
    node = SegmentNode()
    executor = make_executor()
    executor.add_node(node)
    try:
        executor.spin_until_future_complete(node.exit_requested)
        end = time.monotonic() + 0.5  # let the shutdown transition's reply go out
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node.worker is not None:
            node.worker.close("the node process is exiting")
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
