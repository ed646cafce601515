"""Replay a bag into a segment node process, ask a query mid-stream, collect and check what it publishes.

Shared by the bag integration tests, the launch_testing test (test/launch/) and
``make demo``. Three processes, as on a robot: the node (``segment_node`` with
the launch file's parameters file and remaps), the player (``sa2va-i-play``)
and this one, the ``Observer``, which subscribes to the camera and to every
output and calls ``~/segment`` once ``query_after`` camera frames have been
seen. ``check_replay`` holds the assertions both tests make. Every process runs
under the network rule (``testing/ros_env.py``).

The node keeps up with the camera by tracking the newest frame and dropping
stale ones, and a new track's catch-up may thin frames to join the live
stream on time (docs/DESIGN.md): a frame after the query may have no output.
Once the player ended, the observer waits until the node reports on
/diagnostics that it is done with the last played frame (``node_settled``;
under load it may still be catching up then), takes the node's counts of
dropped and thinned frames from that report, and ``check_replay`` requires
every frame without an output to be accounted for by them.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sa2va_i_ros.testing.node_client import call, configure_and_activate, spin_until
from sa2va_i_ros.testing.ros_env import local_ros_env
from sa2va_i_ros.testing.synthetic.bag_writer import (
    COLOR_TOPIC,
    COMPRESSED_COLOR_TOPIC,
    DEPTH_TOPIC,
    INFO_TOPIC,
    TYPESTORE,
)

QUERY = "the cup left of the bowl"


@dataclass
class ReplayOptions:
    bag: Path
    model: Path
    query: str = QUERY
    query_after: int = 20  # camera frames seen before the query is sent
    use_depth: bool = True
    node_name: str = "sa2va_i"
    rate: float = 1.0
    timeout_s: float = 180.0
    want_overlay: bool = False  # subscribe to ~/overlay (the node renders it only for subscribers)
    want_markers: bool = False  # subscribe to ~/markers
    compressed: bool = False  # the bag holds image_transport compressed topics: the node subscribes to those
    # stop the player once the node reports this many frames tracked live (0: play the whole bag): with a
    # long bag, a slow machine still sees the track on live frames, and a fast one ends early
    stop_after_live: int = 0
    params: dict = field(default_factory=dict)  # overrides on top of config/segment.yaml


@dataclass
class ReplayResult:
    reply: object = None  # Segment.Response
    camera_headers: dict = field(default_factory=dict)  # stamp_ns -> header of each camera frame seen here
    camera_times: dict = field(default_factory=dict)  # stamp_ns -> monotonic receive time here
    objects: dict = field(default_factory=dict)  # stamp_ns -> TrackedObjectArray
    object_times: dict = field(default_factory=dict)  # stamp_ns -> monotonic receive time here
    masks: dict = field(default_factory=dict)  # stamp_ns -> Image
    points: dict = field(default_factory=dict)  # stamp_ns -> PointCloud2
    overlays: dict = field(default_factory=dict)  # stamp_ns -> Image
    markers: list = field(default_factory=list)  # MarkerArray messages in arrival order
    query_time: float = 0.0  # monotonic time the query was sent
    events: list = field(default_factory=list)
    query_sent_after: int = 0  # camera frames seen when the query was sent
    reply_time: float = 0.0  # monotonic time the reply arrived here
    node_counts: dict = field(default_factory=dict)  # the node's worker counts (/diagnostics) after the replay
    node_log: str = ""
    player_log: str = ""
    node_returncode: int | None = None

    def live_stamps(self) -> list[int]:
        """Stamps of the outputs the node made on live frames (the last ``frames_live`` of them: one track)."""
        live = int(self.node_counts.get("frames_live", 0))
        return sorted(self.objects)[-live:] if live else []

    def latencies_ms(self, live_only: bool = False) -> list[float]:
        """Camera frame seen here -> its objects message seen here, sorted.

        Frames that arrived while the query was grounded come out while the new
        track catches up; ``live_only`` keeps the frames it tracked live.
        """
        stamps = self.live_stamps() if live_only else self.object_times
        return sorted((self.object_times[s] - self.camera_times[s]) * 1e3 for s in stamps
                      if s in self.camera_times and s in self.object_times)


def _stamp_ns(header) -> int:
    from sa2va_i_ros.ros.conversions import stamp_to_ns

    return stamp_to_ns(header.stamp)


class Observer:
    """The third process's side: subscriptions, the query, waiting for the node's last outputs."""

    def __init__(self, opts: ReplayOptions, domain_id: int | None = None):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CompressedImage, Image, PointCloud2
        from visualization_msgs.msg import MarkerArray

        from sa2va_i_ros.msg import TrackedObjectArray, TrackEvent
        from sa2va_i_ros.srv import Segment

        self.opts, self.result = opts, ReplayResult()
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=domain_id)
        self.node = rclpy.create_node("replay_observer", context=self.ctx)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        r, n, qos = self.result, f"/{opts.node_name}", QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        self.diagnostics: list = []  # (receive time, counts of the node's output status)

        def keep(store, times=None):
            def callback(msg):
                stamp = _stamp_ns(msg.header)
                store[stamp] = msg
                if times is not None:
                    times[stamp] = time.monotonic()
            return callback

        def camera(msg):
            r.camera_headers[_stamp_ns(msg.header)] = msg.header
            r.camera_times[_stamp_ns(msg.header)] = time.monotonic()

        sub = self.node.create_subscription
        sub(CompressedImage if opts.compressed else Image, observed_camera_topic(opts), camera, qos)
        sub(TrackedObjectArray, f"{n}/objects", keep(r.objects, r.object_times), qos)
        sub(Image, f"{n}/mask", keep(r.masks), qos)
        sub(PointCloud2, f"{n}/object_points", keep(r.points), qos)
        sub(TrackEvent, f"{n}/events", r.events.append, qos)
        sub(DiagnosticArray, "/diagnostics", self._diagnostics, qos)
        if opts.want_overlay:
            sub(Image, f"{n}/overlay", keep(r.overlays), qos)
        if opts.want_markers:
            sub(MarkerArray, f"{n}/markers", r.markers.append, qos)
        self.segment = self.node.create_client(Segment, f"{n}/segment")
        self._request = Segment.Request

    def _diagnostics(self, msg) -> None:
        for st in msg.status:
            if st.name.endswith(f"{self.opts.node_name}: output"):
                self.diagnostics.append((time.monotonic(), {kv.key: kv.value for kv in st.values}))

    def wait_for_outputs(self, timeout: float = 60.0) -> None:
        """Until each output topic hears the node (after configure): no message is lost to late discovery."""
        for sub in self.node.subscriptions:
            if sub.topic_name.startswith(f"/{self.opts.node_name}/") and \
                    not self.spin(lambda sub=sub: sub.get_publisher_count() > 0, timeout):
                raise RuntimeError(f"the node's {sub.topic_name} did not appear")

    def spin(self, predicate, timeout: float) -> bool:
        return spin_until(self.executor, predicate, timeout)

    def activate(self) -> None:
        """configure + activate through the node's lifecycle services (the launch file does it itself)."""
        configure_and_activate(self.node, self.executor, self.opts.node_name)

    def live_frames(self) -> int:
        """Frames the node reports it tracked live (its latest /diagnostics)."""
        return int(self.diagnostics[-1][1].get("frames_live", 0)) if self.diagnostics else 0

    def query_and_collect(self, player_done, stop_player=None) -> ReplayResult:
        """Send the query after ``query_after`` frames, then collect until the node answered the last frame."""
        opts, r = self.opts, self.result
        if not self.spin(lambda: len(r.camera_headers) >= opts.query_after, opts.timeout_s):
            raise RuntimeError(f"only {len(r.camera_headers)} camera frames arrived")
        r.query_sent_after = len(r.camera_headers)
        r.query_time = time.monotonic()
        r.reply = call(self.executor, self.segment, self._request(query=opts.query, track=True),
                       "the segment request", opts.timeout_s)
        r.reply_time = time.monotonic()
        def enough() -> bool:
            return bool(opts.stop_after_live) and self.live_frames() >= opts.stop_after_live

        self.spin(lambda: player_done() or enough(), opts.timeout_s)
        if not player_done() and stop_player is not None:
            stop_player()
            self.spin(player_done, 30.0)
        last = max(r.camera_headers, default=-1)
        settled = self.spin(lambda: self._settled_counts(last) is not None, opts.timeout_s)
        if settled:
            self.result.node_counts = self._settled_counts(last)
        else:  # a hang (or the node never got the last frame): check_replay tells what is missing
            self._final_counts()
        return r

    def _settled_counts(self, last: int) -> dict | None:
        """The node's counts once it reported being done with the last played frame and its outputs are here.

        Under load the node may still be catching up (or tracking) when the player
        ends; stopping after a quiet period cut its last outputs. This waits for
        the node's own report instead, however slow it is.
        """
        for _, values in reversed(self.diagnostics):
            if node_settled(values, last, self.result.objects, self.result.masks):
                return _node_counts(values)
        return None

    def _final_counts(self) -> None:
        """The node's counts from a /diagnostics message received after now (when it never settled)."""
        after = time.monotonic()
        self.spin(lambda: any(t > after for t, _ in self.diagnostics), 10.0)
        if self.diagnostics:
            self.result.node_counts = _node_counts(self.diagnostics[-1][1])

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.ctx.try_shutdown()


def _node_counts(values: dict) -> dict:
    """The counts check_replay reads from a /diagnostics output status (frames, requests, images)."""
    return {k: int(v) for k, v in values.items() if k.startswith(("frames_", "requests", "images_"))}


def node_settled(values: dict, last_stamp: int, objects: dict, masks: dict) -> bool:
    """Whether a /diagnostics output status says the node is done with the frame stamped ``last_stamp`` (it
    holds it or a newer one and its worker is idle, no output waits for depth) and its newest published
    output (objects and mask) has arrived here. Done does not mean right: the check judges the outputs."""
    try:
        newest, last_out = int(values["newest_stamp_ns"]), int(values["last_output_stamp_ns"])
        idle, pending = values["worker_idle"] == "True", int(values["outputs_pending"])
    except (KeyError, ValueError):
        return False
    return newest >= last_stamp and idle and pending == 0 and (last_out < 0 or (last_out in objects and
                                                                                last_out in masks))


def _params_file() -> Path:
    from sa2va_i_ros.testing.ros_env import fastdds_profile

    return fastdds_profile().parent / "segment.yaml"


def node_command(opts: ReplayOptions) -> list[str]:
    """The executable with the parameters file and remaps the launch file passes."""
    params = {"model": str(opts.model), "device": "cpu", "use_depth": opts.use_depth, **opts.params}
    cmd = [sys.executable, "-m", "sa2va_i_ros.ros.segment_node", "--ros-args", "-r", f"__node:={opts.node_name}",
           "--params-file", str(_params_file()),
           "-r", f"image:={COLOR_TOPIC}", "-r", f"depth:={DEPTH_TOPIC}", "-r", f"camera_info:={INFO_TOPIC}"]
    for key, value in params.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        cmd += ["-p", f"{key}:={text}"]
    return cmd


def player_command(bag: Path, rate: float = 1.0, observed: str | None = None) -> list[str]:
    """The player; it starts once the node, and the observer on ``observed``, hear every topic.

    Waiting for the node alone let the first frames reach the node before the
    observer's subscription matched on a loaded machine (CI saw 16 of 60).
    """
    cmd = [sys.executable, "-m", "sa2va_i_ros.cli.play", str(bag), "--qos", "reliable", "--rate", str(rate),
           "--wait-for-subscribers", "60"]
    return cmd + (["--subscribers", f"{observed}=2"] if observed else [])


def observed_camera_topic(opts: ReplayOptions) -> str:
    return COMPRESSED_COLOR_TOPIC if opts.compressed else COLOR_TOPIC


def run_replay(opts: ReplayOptions) -> ReplayResult:
    """Start the node and the player as processes, observe from this one."""
    env = local_ros_env()
    node_proc = subprocess.Popen(node_command(opts), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True)
    player, observer = None, Observer(opts, domain_id=int(env["ROS_DOMAIN_ID"]))
    result = observer.result
    try:
        observer.activate()
        observer.wait_for_outputs()
        player = subprocess.Popen(player_command(opts.bag, opts.rate, observed_camera_topic(opts)), env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        observer.query_and_collect(lambda: player.poll() is not None, lambda: player.send_signal(signal.SIGINT))
    finally:
        observer.close()
        if player is not None:
            if player.poll() is None:
                player.send_signal(signal.SIGINT)
            result.player_log = player.communicate(timeout=30)[0]
        node_proc.send_signal(signal.SIGINT)
        try:
            result.node_log = node_proc.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            node_proc.kill()
            result.node_log = node_proc.communicate()[0]
        result.node_returncode = node_proc.returncode
    return result


def check_replay(result: ReplayResult, bag_stamps: list[int], frame_id: str, k: list[float],
                 depths: dict[int, np.ndarray], num_frames: int = 5, query: str = QUERY) -> list[str]:
    """Everything a replay must show; returns the problems found (empty: all good).

    The reply succeeds; the sampled stamps are bag stamps at the uniform indices of
    the buffered window (bag frames ending at the newest buffered one, less those
    the node reports it never received);
    every later bag frame has an objects message and a mask with exactly its
    header, or is one of the frames the node reports it dropped as stale or
    thinned; the last frame has one and some were tracked live; nothing is
    invented; object points lie inside the camera frustum, on masked pixels, at
    the depth of those pixels.
    """
    from sa2va_i_ros.model.sampling import sample_indices

    problems: list[str] = []
    reply = result.reply
    if reply is None or not reply.success:
        return [f"the segment request failed: {getattr(reply, 'message', 'no reply')}"]
    from sa2va_i_ros.ros.conversions import stamp_to_ns

    sampled = [stamp_to_ns(s) for s in reply.sampled_stamps]
    if not set(sampled) <= set(bag_stamps):
        return ["sampled stamps are not stamps of the bag"]
    indices = list(reply.sampled_indices)
    if indices != sample_indices(reply.window_frames, num_frames):
        problems.append(f"sampled indices {indices} are not the uniform ones")
    played = set(result.camera_headers)  # the player may have been stopped before the bag's end
    counts = result.node_counts
    # image frames the node never received (best-effort image QoS with queue depth 2, as in production)
    unreceived = max(0, len(played) - counts.get("images_received", len(played)))
    # The window is the node's buffered frames: consecutive bag frames except those it never received.
    # Between two sampled frames the bag holds at least as many frames as the window, and every bag frame
    # the window lacks is one the node did not receive.
    positions = [bag_stamps.index(stamp) for stamp in sampled]
    skipped = [(positions[k + 1] - positions[k]) - (indices[k + 1] - indices[k]) for k in range(len(indices) - 1)]
    if any(gap < 0 for gap in skipped) or sum(skipped) > unreceived:
        problems.append(f"sampled stamps are not the window's frames at the sampled indices (bag positions "
                        f"{positions}, window indices {indices}, {unreceived} frames not received)")
    # the newest window frame: exactly known when every frame was received, else within the unreceived slack
    end_first = positions[-1] + (reply.window_frames - 1 - indices[-1])
    end_last = end_first + max(0, unreceived - sum(skipped))
    later = [s for s in bag_stamps[end_last + 1:] if s in played]
    if not later:
        problems.append("no bag frame came after the grounding window")
    missing = [s for s in later if s not in result.objects or s not in result.masks]
    # frames the node dropped as stale, thinned, or never received
    accounted = counts.get("frames_dropped_stale", 0) + counts.get("frames_thinned", 0) + unreceived
    if not counts:
        problems.append("no /diagnostics from the node after the replay")
    elif len(missing) > accounted:
        problems.append(f"{len(missing)} frames after the window have no output, but the node reports only "
                        f"{accounted} dropped, thinned or not received: "
                        f"{[bag_stamps.index(s) for s in missing][:10]}")
    if later and later[-1] not in result.objects:
        problems.append("the last frame has no output: the node never caught up with the stream")
    outputs = sorted(result.objects)
    if counts and counts.get("frames_live", 0) < 1:
        problems.append("no frame was tracked live")
    for stamp in later:
        if stamp not in result.objects or stamp not in result.masks:
            continue
        for msg in (result.objects[stamp], result.masks[stamp]):
            if msg.header.frame_id != frame_id or _stamp_ns(msg.header) != stamp:
                problems.append(f"frame {bag_stamps.index(stamp)}: output header differs from the frame's")
        objects = result.objects[stamp].objects
        if len(objects) != 1 or objects[0].track_id != reply.track_id or objects[0].query != query:
            problems.append(f"frame {bag_stamps.index(stamp)}: objects message does not hold the one track")
    if not set(result.objects) <= set(bag_stamps):
        problems.append("an objects message carries a stamp that is not in the bag")
    if [s for s in outputs if s > bag_stamps[end_last]] != [s for s in later if s in result.objects]:
        problems.append("outputs of frames before the window end were published after the reply")
    fx, cx, fy, cy = k[0], k[2], k[4], k[5]
    checked = 0
    for stamp, cloud in result.points.items():
        pts = np.frombuffer(bytes(cloud.data), [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("id", "<u4")])
        if not len(pts) or stamp not in result.masks:
            continue
        m = result.masks[stamp]
        mask = np.frombuffer(bytes(m.data), np.uint8).reshape(m.height, m.width)
        u = np.rint(pts["x"] * fx / pts["z"] + cx).astype(int)
        v = np.rint(pts["y"] * fy / pts["z"] + cy).astype(int)
        inside = (pts["z"] > 0) & (u >= 0) & (u < m.width) & (v >= 0) & (v < m.height)
        if not inside.all():
            problems.append(f"object points outside the camera frustum at {stamp}")
            continue
        if not (mask[v, u] == 255).all():
            problems.append(f"object points off the mask at {stamp}")
        if not np.allclose(pts["z"], depths[stamp][v, u], atol=1e-3):
            problems.append(f"object points not at the depth of their pixels at {stamp}")
        checked += 1
    if checked < 5:
        problems.append(f"object points checked on only {checked} frames")
    return problems


def check_markers(result: ReplayResult, bag_stamps: list[int], frame_id: str, query: str = QUERY) -> list[str]:
    """~/markers: every marker carries a bag frame's header; the track's label names its query and id, and
    with depth a sphere and a box accompany it; the label arrives for the frames after the grounding window."""
    from visualization_msgs.msg import Marker

    problems = []
    reply = result.reply
    labelled = set()
    for array in result.markers:
        for m in array.markers:
            if m.header.frame_id != frame_id or _stamp_ns(m.header) not in bag_stamps:
                problems.append(f"marker {m.ns}/{m.id} carries a header that is no bag frame's")
            if m.ns == "labels" and m.action == Marker.ADD:
                if m.id != reply.track_id or not m.text.startswith(f"{query} #{reply.track_id}"):
                    problems.append(f"label {m.text!r} does not name the track")
                labelled.add(_stamp_ns(m.header))
        kinds = {(m.ns, m.action) for m in array.markers}
        if ("labels", Marker.ADD) in kinds and ("centroids", Marker.ADD) not in kinds \
                and ("centroids", Marker.DELETE) not in kinds:
            problems.append("a label without its centroid marker (added, or deleted for want of depth)")
    later = {s for s in result.objects if s in bag_stamps}
    if not later or not later <= labelled:
        problems.append(f"{len(later - labelled)} frames with objects have no label marker")
    if not any(m.ns == "centroids" and m.action == Marker.ADD for a in result.markers for m in a.markers):
        problems.append("no centroid sphere on any frame (depth is on)")
    return problems


def bag_depths(bag: Path) -> dict[int, np.ndarray]:
    """Depth in metres of every frame of a bag, by header stamp (read with rosbags)."""
    from rosbags.rosbag2 import Reader

    depths = {}
    with Reader(bag) as reader:
        conns = [c for c in reader.connections if c.topic == DEPTH_TOPIC]
        for conn, _, raw in reader.messages(connections=conns):
            msg = TYPESTORE.deserialize_cdr(raw, conn.msgtype)
            depths[_stamp_ns(msg.header)] = np.frombuffer(msg.data.tobytes(), "<u2").reshape(
                msg.height, msg.width) / 1000.0
    return depths


def bag_frames(bag: Path) -> dict[int, np.ndarray]:
    """RGB of every colour frame of a bag (raw or image_transport compressed), by header stamp."""
    from rosbags.rosbag2 import Reader

    from sa2va_i_ros.imaging.compressed_codec import decode_compressed_rgb
    from sa2va_i_ros.imaging.image_codec import decode_rgb

    frames = {}
    with Reader(bag) as reader:
        conns = [c for c in reader.connections if c.topic in (COLOR_TOPIC, COMPRESSED_COLOR_TOPIC)]
        for conn, _, raw in reader.messages(connections=conns):
            msg = TYPESTORE.deserialize_cdr(raw, conn.msgtype)
            if conn.topic == COLOR_TOPIC:
                rgb = decode_rgb(msg.height, msg.width, msg.encoding, msg.step, msg.data.tobytes())
            else:
                rgb = decode_compressed_rgb(msg.format, msg.data.tobytes())
            frames[_stamp_ns(msg.header)] = rgb
    return frames
