"""The segment node: a lifecycle node wiring camera topics to a perception ``Session``.

* configure: load the checkpoint (a bad path or file fails the transition with
  the reason logged; the node stays up and can be configured again), create the
  frame buffer, the session and the publishers;
* activate: subscribe to ``image`` (+ ``depth`` and ``camera_info`` with
  ``use_depth``) and publish; deactivate: unsubscribe; cleanup: free the model.

Services ``~/segment`` and ``~/stop_tracking`` and the action
``~/segment_and_track`` exist from start-up and answer with a clear message
while the node is not active. Every output carries the source frame's header.
"""

from __future__ import annotations

import functools
import gc
import threading
import time
import traceback

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data, qos_profile_system_default
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from sa2va_i_ros.action import SegmentAndTrack
from sa2va_i_ros.core.errors import Sa2VAError
from sa2va_i_ros.core.frame_buffer import FrameBuffer
from sa2va_i_ros.core.geometry import GeometryError
from sa2va_i_ros.core.image_codec import ImageDecodeError
from sa2va_i_ros.core.session import SegmentRequest, Session, Settings
from sa2va_i_ros.core.tracker import TrackerConfig
from sa2va_i_ros.msg import Timing, TrackedObjectArray, TrackEvent
from sa2va_i_ros.srv import Segment, StopTracking

from . import conversions as conv
from .depth_pairing import DepthPairer
from .diagnostics import ERROR, OK, WARN, Percentiles, RateMeter, diagnostic_array, status
from .outputs import frame_messages
from .parameters import BY_NAME, check_value, declare_all, read_all

SESSION_SETTINGS = ("num_frames", "max_num_frames", "sampling", "prompt_frames", "max_query_chars",
                    "max_queued_requests", "max_tracks", "gap_policy", "max_new_tokens")
EVENT_KINDS = {"lost": TrackEvent.LOST, "found": TrackEvent.FOUND}


def guarded(callback):
    """Keep the node alive whatever a callback raises: log it, count it, answer what can be answered.

    An exception escaping a callback would stop rclpy's executor and with it the
    node; bad input is handled inside the callbacks, this is the last line for bugs.
    """
    @functools.wraps(callback)
    def wrapper(self, *args):
        try:
            return callback(self, *args)
        except Exception as exc:  # the node must survive anything a callback meets
            if not self.context.ok():
                return None  # shutting down (SIGINT): publishers are already gone
            self._counts["internal errors"] = self._counts.get("internal errors", 0) + 1
            self.get_logger().error(f"{callback.__name__} failed: {exc!r}\n{traceback.format_exc()}")
            if len(args) == 2 and hasattr(args[1], "success"):  # a service: answer with the error
                args[1].success, args[1].message = False, f"internal error: {exc!r}"
                return args[1]
            return None
    return wrapper


class SegmentNode(LifecycleNode):
    def __init__(self, name: str = "sa2va_i", **kwargs):
        super().__init__(name, **kwargs)
        declare_all(self)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.session: Session | None = None
        self.active = False
        self._subs: list = []
        self._pubs: dict = {}
        self._camera_info: CameraInfo | None = None
        self._pairer = DepthPairer()
        self._use_depth = False
        self._out_lock = threading.Lock()  # pairer and publishing: camera thread and request threads
        self._counts: dict[str, int] = {}
        self._in_rate, self._out_rate = RateMeter(), RateMeter()
        self._last_lag_ms = float("nan")
        self._overhead_ms = Percentiles()  # image callback time minus the tracker step
        self._model_state = "unconfigured"
        self._frames_group = MutuallyExclusiveCallbackGroup()
        self._depth_group = MutuallyExclusiveCallbackGroup()  # never starved by slow image callbacks
        self._requests_group = ReentrantCallbackGroup()
        self._diag_group = MutuallyExclusiveCallbackGroup()
        self.create_service(Segment, "~/segment", self._on_segment, callback_group=self._requests_group)
        self.create_service(StopTracking, "~/stop_tracking", self._on_stop, callback_group=self._requests_group)
        self._action = ActionServer(self, SegmentAndTrack, "~/segment_and_track", self._on_action,
                                    goal_callback=lambda goal: GoalResponse.ACCEPT,
                                    cancel_callback=lambda goal: CancelResponse.ACCEPT,
                                    callback_group=self._requests_group)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(self.get_parameter("diagnostics_period").value, self._publish_diagnostics,
                                             callback_group=self._diag_group)

    # -- lifecycle ------------------------------------------------------------------------------
    def on_configure(self, state) -> TransitionCallbackReturn:
        p = read_all(self)
        self._model_state = "loading"
        try:
            from sa2va_i_ros.core.device import resolve_auto
            from sa2va_i_ros.core.grounding import GroundingEngine

            device, dtype = resolve_auto(p["device"], p["dtype"])
            t0 = time.perf_counter()
            engine = GroundingEngine.load(p["model"], device=device, dtype=dtype,
                                          original_sam2=p["original_sam2"] or None,
                                          revision=p["model_revision"] or None, lm_devices=p["lm_devices"] or None)
            buffer = FrameBuffer(max_frames=p["buffer_max_frames"], max_seconds=p["buffer_max_seconds"],
                                 max_bytes=p["buffer_max_megabytes"] << 20, downscale=p["buffer_downscale"] or None)
            tracker = TrackerConfig(gap_policy=p["gap_policy"], threshold=p["presence_threshold"],
                                    lost_after=p["lost_after_frames"], found_after=p["found_after_frames"],
                                    dtype=dtype)
            self.session = Session(engine, buffer, tracker, Settings(**{k: p[k] for k in SESSION_SETTINGS}))
        except (Sa2VAError, ValueError, OSError) as exc:
            self._model_state = f"configure failed: {exc}"
            self.get_logger().error(f"configure failed, node stays unconfigured: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._model_state = f"loaded {p['model']} on {device}/{dtype} in {time.perf_counter() - t0:.1f} s"
        self.get_logger().info(self._model_state)
        # reliable and deep: when a track starts, the frames that arrived during grounding come out in
        # one burst; a KEEP_LAST history shorter than that burst drops outputs a consumer has not acked
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self._pubs = {
            "objects": self.create_publisher(TrackedObjectArray, "~/objects", reliable),
            "mask": self.create_publisher(Image, "~/mask", reliable),
            "points": self.create_publisher(PointCloud2, "~/object_points", reliable),
            "overlay": self.create_publisher(Image, "~/overlay", reliable),
            "events": self.create_publisher(TrackEvent, "~/events", QoSProfile(depth=100)),
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
        g = self._frames_group
        self._subs = [self.create_subscription(Image, "image", self._on_image, profile, callback_group=g)]
        if p["use_depth"]:
            self._pairer = DepthPairer(round(p["depth_sync_tolerance"] * 1e9), p["depth_wait"])
            d = self._depth_group
            self._subs += [self.create_subscription(Image, "depth", self._on_depth, profile, callback_group=d),
                           self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, 10,
                                                    callback_group=d),
                           self.create_timer(0.02, self._expire_pending, callback_group=d)]
        self._use_depth = p["use_depth"]
        self.active = True
        self.get_logger().info(f"active: image QoS {p['image_qos']}, depth {'on' if p['use_depth'] else 'off'}")
        return TransitionCallbackReturn.SUCCESS

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
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self.active = False
        if self.session is not None:
            self.session.stop(0)
        self.session = None
        for pub in self._pubs.values():
            self.destroy_publisher(pub)
        self._pubs = {}
        self._pairer.clear()
        self._camera_info = None
        _free_memory()
        self._model_state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self.active = False
        self.session = None
        return TransitionCallbackReturn.SUCCESS

    # -- parameters -----------------------------------------------------------------------------
    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for prm in params:
            spec = BY_NAME.get(prm.name)
            if spec is None:
                continue
            why = check_value(spec, prm.value)
            if why:
                return SetParametersResult(successful=False, reason=why)
        session = self.session
        if session is not None:
            changes = {prm.name: prm.value for prm in params if prm.name in SESSION_SETTINGS}
            if changes:
                session.update(**changes)
        return SetParametersResult(successful=True)

    # -- inputs ---------------------------------------------------------------------------------
    def _count(self, what: str, message: str) -> None:
        self._counts[what] = self._counts.get(what, 0) + 1
        self.get_logger().warning(f"{message} (x{self._counts[what]})", throttle_duration_sec=5.0)

    @guarded
    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    @guarded
    def _on_depth(self, msg: Image) -> None:
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
        for (out, rgb, stamp_ns), depth_msg in ready:
            self._publish_frame(out, rgb, stamp_ns, depth_msg)

    @guarded
    def _on_image(self, msg: Image) -> None:
        session = self.session
        if not self.active or session is None:
            return
        t0 = time.perf_counter()
        self._in_rate.tick()
        try:
            rgb = conv.image_to_rgb(msg)
        except ImageDecodeError as exc:
            self._count(f"image {type(exc).__name__}", f"image dropped: {exc}")
            return
        header = conv.copy_header(msg.header)
        stamp = conv.stamp_to_ns(msg.header.stamp)
        try:
            result = session.on_frame(header, stamp, rgb)
        except (Sa2VAError, ValueError) as exc:
            self._count("tracking error", f"frame not tracked: {exc}")
            return
        if result.clock_reset:
            self.get_logger().warning("image stamps jumped back by more than 1 s: frame buffer restarted")
            with self._out_lock:
                self._publish_ready(self._pairer.flush())
                self._pairer.clear()
        if not result.push.accepted:
            self._count(f"image {result.push.code}", f"image dropped: {result.push.reason}")
        elif result.push.code == "size_change":
            self.get_logger().warning(result.push.reason)
        if result.output is not None:
            self._emit(result.output, rgb, stamp)
            self._overhead_ms.add((time.perf_counter() - t0) * 1e3 - result.track_ms)

    def _emit(self, out, rgb, stamp_ns: int) -> None:
        """Publish a frame's output now, or once its depth image arrives (``use_depth``)."""
        with self._out_lock:
            if self._use_depth:
                self._publish_ready(self._pairer.add_output(stamp_ns, (out, rgb, stamp_ns)))
            else:
                self._publish_frame(out, rgb, stamp_ns, None)

    def _depth_for(self, depth_msg):
        """Depth (metres) and intrinsics for a frame, or (None, None) with the reason counted."""
        if depth_msg is None:
            return None, None
        if self._camera_info is None:
            self._count("no camera_info", "no camera_info received: 3D output skipped")
            return None, None
        try:
            return conv.image_to_depth(depth_msg), conv.camera_info_to_intrinsics(self._camera_info)
        except (ImageDecodeError, GeometryError) as exc:
            self._count(f"depth {type(exc).__name__}", f"depth unusable: {exc}")
            return None, None

    # -- outputs --------------------------------------------------------------------------------
    def _publish_frame(self, out, rgb, stamp_ns: int, depth_msg=None) -> None:
        depth, intrinsics = self._depth_for(depth_msg)
        # the overlay is for people (RViz): only made while someone subscribes to it
        want_overlay = (self.get_parameter("publish_overlay").value
                        and self._pubs["overlay"].get_subscription_count() > 0)
        msgs = frame_messages(out, rgb if want_overlay else None, depth, intrinsics,
                              self.get_parameter("max_points").value)
        for problem in msgs.problems:
            self._count("depth mismatch", problem)
        pubs = self._pubs
        pubs["objects"].publish(msgs.objects)
        pubs["mask"].publish(msgs.mask)
        if msgs.points is not None:
            pubs["points"].publish(msgs.points)
        if msgs.overlay is not None:
            pubs["overlay"].publish(msgs.overlay)
        for track_id, kind, score in out.events:
            self._publish_event(out.header, track_id, EVENT_KINDS[kind], score)
        self._out_rate.tick()
        now = self.get_clock().now().nanoseconds
        self._last_lag_ms = (now - stamp_ns) / 1e6

    def _publish_event(self, header, track_id: int, kind: int, score: float) -> None:
        query = self.session.queries.get(track_id, "") if self.session else ""
        self._pubs["events"].publish(TrackEvent(header=conv.copy_header(header), track_id=track_id, query=query,
                                                event=kind, score=float(score)))

    # -- requests -------------------------------------------------------------------------------
    def _serve(self, goal, progress=None, cancelled=None):
        """A Segment response (also the action's result fields) for a request or goal."""
        session = self.session
        if not self.active or session is None:
            state = "not configured" if session is None else "not active"
            return False, f"the node is {state}: configure and activate it first", None
        req = SegmentRequest(query=goal.query, num_frames=int(goal.num_frames), sampling=goal.sampling,
                             prompt_frames=goal.prompt_frames, track=bool(goal.track),
                             window_sec=float(goal.window_sec))
        def started(reply) -> None:  # under the session's lock: before any later live frame
            for old in reply.replaced:
                self._publish_event(reply.newest.header, old, TrackEvent.STOPPED, 0.0)
            self._publish_event(reply.newest.header, reply.track_id, TrackEvent.STARTED, reply.newest.score)
            for out in reply.caught_up:  # frames that arrived while grounding ran
                self._emit(out, None, conv.stamp_to_ns(out.header.stamp))

        reply = session.segment(req, progress, cancelled, on_started=started)
        return reply.success, reply.message, reply

    def _fill(self, response, ok: bool, message: str, reply) -> None:
        response.success, response.message = ok, message
        if reply is None:
            return
        response.track_id = reply.track_id
        response.answer = reply.answer
        response.window_frames = reply.window_frames
        response.sampled_indices = [int(i) for i in reply.sampled_indices]
        response.sampled_stamps = [h.stamp for h in reply.sampled_headers]
        if reply.newest is not None:
            o = reply.newest
            response.object = conv.tracked_object_msg(o.header, reply.track_id, o.query,
                                                      o.score, o.visible, o.mask, None)
        t = reply.timing_ms
        response.timing = Timing(queue_ms=t.get("queue", 0.0), preprocess_ms=t.get("preprocess", 0.0),
                                 language_ms=t.get("language", 0.0), decode_ms=t.get("decode", 0.0),
                                 propagate_ms=t.get("propagate", 0.0), total_ms=t.get("total", 0.0))

    @guarded
    def _on_segment(self, request: Segment.Request, response: Segment.Response) -> Segment.Response:
        ok, message, reply = self._serve(request)
        self._fill(response, ok, message, reply)
        if ok:
            self.get_logger().info(f"segment {request.query[:80]!r}: track {response.track_id}")
        else:
            self.get_logger().warning(f"segment {request.query[:80]!r} refused: {message}")
        return response

    def _on_action(self, goal_handle):
        try:
            return self._run_action(goal_handle)
        except Exception as exc:  # as guarded(): the node survives, the goal is aborted with the reason
            self._counts["internal errors"] = self._counts.get("internal errors", 0) + 1
            self.get_logger().error(f"segment_and_track failed: {exc!r}\n{traceback.format_exc()}")
            goal_handle.abort()
            return SegmentAndTrack.Result(success=False, message=f"internal error: {exc!r}")

    def _run_action(self, goal_handle):
        goal = goal_handle.request

        def progress(stage: str, fraction: float, detail: str) -> None:
            goal_handle.publish_feedback(SegmentAndTrack.Feedback(stage=stage, progress=float(fraction),
                                                                  detail=detail))

        ok, message, reply = self._serve(goal, progress, lambda: goal_handle.is_cancel_requested)
        result = SegmentAndTrack.Result()
        self._fill(result, ok, message, reply)
        if goal_handle.is_cancel_requested:
            if ok and reply.track_id:  # cancelled after the track started: undo it
                self.session.stop(reply.track_id)
                result.success, result.message, result.track_id = False, "cancelled", 0
            goal_handle.canceled()
        elif ok:
            goal_handle.succeed()
        else:
            goal_handle.abort()
        return result

    @guarded
    def _on_stop(self, request: StopTracking.Request, response: StopTracking.Response):
        session = self.session
        if session is None:
            response.success, response.message = False, "the node is not configured"
            return response
        try:
            stopped = session.stop(int(request.track_id))
        except ValueError as exc:
            response.success, response.message = False, str(exc)
            return response
        latest = session.buffer.latest()
        for track_id in stopped:
            header = latest.header if latest is not None else conv.copy_header(_empty_header())
            self._pubs["events"].publish(TrackEvent(header=conv.copy_header(header), track_id=track_id,
                                                    event=TrackEvent.STOPPED, score=0.0))
        response.success, response.stopped_ids = True, stopped
        response.message = f"stopped {stopped}" if stopped else "nothing was tracked"
        return response

    # -- diagnostics ----------------------------------------------------------------------------
    @guarded
    def _publish_diagnostics(self) -> None:
        session = self.session
        name = self.get_fully_qualified_name()
        in_rate, out_rate = self._in_rate.rate(), self._out_rate.rate()
        statuses = [
            status(f"{name}: model", OK if session else (ERROR if "failed" in self._model_state else WARN),
                   self._model_state, {"active": self.active}),
            status(f"{name}: input", OK if in_rate > 0 or not self.active else WARN,
                   f"{in_rate:.1f} frames/s", {"rate_hz": f"{in_rate:.2f}", **self._counts,
                                               **({"buffered": len(session.buffer)} if session else {})}),
            status(f"{name}: output", OK, f"{out_rate:.1f} frames/s",
                   {"rate_hz": f"{out_rate:.2f}", "stamp_lag_ms": f"{self._last_lag_ms:.1f}",
                    "overhead_ms_p50": f"{self._overhead_ms.get(0.5):.3f}",
                    "overhead_ms_p95": f"{self._overhead_ms.get(0.95):.3f}",
                    "grounding_running": session.grounding_running if session else False}),
        ]
        if session:
            for track_id in session.track_ids:
                visible = session.tracker.is_visible(track_id)
                statuses.append(status(f"{name}: track {track_id}", OK if visible else WARN,
                                       "visible" if visible else "lost",
                                       {"query": session.queries.get(track_id, "")}))
        self._diag_pub.publish(diagnostic_array(self.get_clock().now().to_msg(), statuses))


def _empty_header():
    from std_msgs.msg import Header

    return Header()


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
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

