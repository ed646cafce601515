"""Every parameter of the segment node, declared once with its description and bounds.

``PARAMETERS`` is the single source: the node declares them from it (with
``ParameterDescriptor`` ranges, read-only flags and allowed values), a test
checks that config/segment.yaml lists each one with its default, and the README
table is checked against it. ``applies`` says when a change takes effect:
``start-up``, ``configure`` (model loading, buffer), ``activate``
(subscriptions), ``live``. ``check_value`` checks one value (type, choices,
range, ``pattern``), ``check_together`` the rules between parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sa2va_i_ros.tracking.models import TRACKER_MODEL_NAMES

CAMERAS_PATTERN = r"([A-Za-z][A-Za-z0-9_]*(,[A-Za-z][A-Za-z0-9_]*)*)?"


def camera_names(value: str) -> list[str]:
    """The node's cameras from the ``cameras`` parameter: [""] (the default camera) when empty."""
    names = [n for n in value.split(",") if n] or [""]
    if len(set(names)) != len(names):
        raise ValueError(f"cameras must be distinct names; got {value!r}")
    return names


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    applies: str = "live"
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    read_only: bool = False
    pattern: str = ""  # a regular expression a string value must match in full
    extra: dict = field(default_factory=dict)


PARAMETERS: tuple[Param, ...] = (
    # model
    Param("model", "kumuji/Sa2VA-i-1B", "Sa2VA-i / Sa2VA / SaSaSa2VA checkpoint: a directory or a Hugging Face "
          "hub id (its kind is read from its config.json)", "configure"),
    Param("original_sam2", "", "SAM 2.0 Hiera-L safetensors giving the original decoder (plain Sa2VA "
          "checkpoints only; Sa2VA-i checkpoints hold both decoders)", "configure"),
    Param("model_revision", "", "hub revision (branch, tag or commit) of a hub model; empty: the default branch",
          "configure"),
    Param("device", "auto", "cpu, cuda, cuda:N, or auto (cuda when available)", "configure",
          pattern=r"auto|cpu|cuda(:[0-9]+)?"),
    Param("dtype", "auto", "float32, float16, bfloat16, or auto (bfloat16 on GPUs with native bfloat16, else "
          "float16 with the language model in float32; float32 on cpu)",
          "configure", choices=("auto", "float32", "float16", "bfloat16")),
    Param("lm_devices", "", "devices to spread the language model's layers over, e.g. cuda:0,cuda:1; empty: "
          "all on device", "configure"),
    # tracker (docs/TRACKER.md "Tracker model" and "GPU speed paths")
    Param("tracker_model", "checkpoint", "SAM2 that propagates the masks: checkpoint (the checkpoint's own SAM 2.0 "
          "Hiera-L: exactly Sa2VA-i) or one of sam2's released models (one more image encoder pass per sampled "
          "frame of a query)", "configure", choices=TRACKER_MODEL_NAMES),
    Param("tracker_weights", "", "weights of a sam2 tracker_model: a local .pt (sam2's official file, read "
          "weights-only) or .safetensors file, or a hub id; empty: the model's official hub repository (online "
          "only). Empty for checkpoint", "configure"),
    Param("tracker_dtype", "auto", "tracker compute precision under autocast: auto (the model's dtype), float32, "
          "float16 or bfloat16 (reduced precision needs a CUDA device)", "configure",
          choices=("auto", "float32", "float16", "bfloat16")),
    Param("tracker_compile", False, "torch.compile the tracker's image encoder and memory attention (CUDA with "
          "triton only; compiled at configure)", "configure"),
    Param("tracker_channels_last", False, "channels-last convolutions in the tracker (CUDA only)", "configure"),
    Param("tracker_backend", "torch", "torch (sam2's modules, exact) or onnxruntime (their exported graphs in "
          "float32: CPU provider, or CUDA/TensorRT where onnxruntime-gpu is installed; docs/DEPLOYMENT.md)",
          "configure", choices=("torch", "onnxruntime")),
    Param("tracker_onnx_dir", "", "onnxruntime backend: the folder sa2va-i-export wrote for this tracker model "
          "(checked against its weights); empty: exported once at configure into ~/.cache/sa2va_i_ros/onnx",
          "configure"),
    Param("tracker_preprocess", "pil", "tracker frame resize: pil (exact, as Sa2VA) or device (uint8 upload, "
          "resized on the tracker's device; masks within the IoU in the README)", "configure",
          choices=("pil", "device")),
    Param("max_new_tokens", 2048, "longest answer the language model may generate (Sa2VA: 2048)", "live",
          low=1, high=8192),
    # grounding defaults (a request may override them)
    Param("num_frames", 5, "frames the language model sees per query (Sa2VA-i evaluation: 5)", "live",
          low=1, high=64),
    Param("max_num_frames", 32, "largest num_frames a request may ask for (at least num_frames)", "live", low=1,
          high=64),
    Param("sampling", "uniform", "uniform (Sa2VA-i) or first (original Sa2VA)", "live",
          choices=("uniform", "first")),
    Param("prompt_frames", "all", "which sampled masks seed SAM2: all (Sa2VA-i code) or first (paper Table 6)",
          "live", choices=("all", "first")),
    Param("sasasa2va_mode", "uniform", "SaSaSa2VA checkpoints only (the model kind comes from the checkpoint's "
          "config.json): how its 100 frames are sampled from the window: uniform (its default), uniform_plus, "
          "wrap_around or wrap_around_plus (q_frame needs indices chosen for a known video)", "live",
          choices=("uniform", "uniform_plus", "wrap_around", "wrap_around_plus")),
    Param("max_query_chars", 1000, "longest query accepted, in characters", "live", low=1, high=100000),
    Param("max_queued_requests", 2, "grounding requests that may wait while one runs; beyond them a request "
          "is answered busy at once (0: busy whenever one runs). 2: three people asking at once are all served, "
          "and a fourth is told busy at once rather than waiting a grounding more per place in the queue", "live",
          low=0, high=16),
    Param("prefill_chunk_tokens", 128, "prompt positions the language model reads per step; live tracking "
          "runs between steps (0: the whole prompt in one step)", "live", low=0, high=8192),
    Param("vision_frames_per_step", 1, "frames per vision-tower step of a grounding (0: all in one step)",
          "live", low=0, high=64),
    # frame buffer
    Param("buffer_max_frames", 300, "frames kept for grounding on past frames", "configure", low=1,
          high=100000),
    Param("buffer_max_seconds", 30.0, "age limit of buffered frames, by header stamp", "configure",
          low=0.1, high=3600.0),
    Param("buffer_max_megabytes", 512, "memory limit of the frame buffer", "configure", low=1, high=65536),
    Param("buffer_downscale", 0, "longest side, in pixels, of the buffered (and tracked) copy of each frame; "
          "0 keeps full frames. Masks come back at the camera's size", "configure", low=0, high=8192),
    # inputs
    Param("cameras", "", "camera names, comma-separated (e.g. head,wrist): one node and one model serve them all; "
          "camera <name> subscribes to <name>/image, <name>/depth, <name>/camera_info and publishes under "
          "~/<name>/. Empty: one camera on image, depth, camera_info, outputs under ~/", "start-up",
          read_only=True, pattern=CAMERAS_PATTERN),
    Param("image_qos", "sensor_data", "QoS of the image/depth subscriptions: sensor_data (best effort), "
          "reliable or system_default", "activate", choices=("sensor_data", "reliable", "system_default")),
    Param("image_transport", "raw", "camera input: raw (sensor_msgs/Image on image, depth), compressed "
          "(image_transport's <image>/compressed JPEG/PNG and <depth>/compressedDepth) or both (the first copy "
          "of each frame wins)", "activate", choices=("raw", "compressed", "both")),
    Param("image_queue_depth", 2, "subscription queue depth (small: the node buffers frames itself)",
          "activate", low=1, high=100),
    Param("use_depth", False, "subscribe to depth and camera_info; publish 3D centroids and object points",
          "activate"),
    Param("depth_sync_tolerance", 0.02, "largest stamp difference, in seconds, between an image and its depth",
          "activate", low=0.0, high=1.0),
    Param("depth_wait", 0.1, "seconds a frame's output waits for its depth image before going out without 3D",
          "activate", low=0.0, high=5.0),
    Param("max_points", 20000, "most points per object in ~/object_points (strided when more)", "live",
          low=1, high=10000000),
    # tracking
    Param("max_tracks", 8, "most objects tracked at once", "live", low=1, high=64),
    Param("presence_threshold", 0.5, "presence probability below which a frame counts as 'not seen'",
          "live", low=0.0, high=1.0),
    Param("lost_after_frames", 10, "consecutive 'not seen' frames before a track is reported lost", "live",
          low=1, high=10000),
    Param("found_after_frames", 1, "consecutive 'seen' frames before a lost track is reported found",
          "live", low=1, high=10000),
    Param("reground_after_sec", 2.0, "seconds (frame stamps) a track stays lost before its query is grounded "
          "again on the recent frames; found, the same track id goes on (regrounded event); 0: never", "live",
          low=0.0, high=3600.0),
    Param("reground_max_attempts", 3, "re-groundings of one loss that find nothing before giving up (gave_up "
          "event)", "live", low=1, high=100),
    Param("reground_backoff", 2.0, "each wait between re-groundings is this many times the previous one",
          "live", low=1.0, high=10.0),
    Param("reground_window_sec", 1.0, "how far back, in seconds, a re-grounding looks (the newest frames)",
          "live", low=0.1, high=60.0),
    Param("gap_policy", "catch_up", "frames that arrived while grounding ran: catch_up (track through "
          "them, thinned to meet max_catch_up_sec) or skip (only the newest)", "live", choices=("catch_up", "skip")),
    Param("max_catch_up_sec", 1.0, "seconds a new object may take, after its grounding, to track from its first "
          "prompted frame to the live stream; frames between prompted ones are thinned evenly to make it (0: "
          "only prompted frames, the newest window frame and the newest frame)", "live", low=0.0, high=60.0),
    # outputs
    Param("publish_overlay", True, "publish ~/overlay (rgb8, for RViz)", "live"),
    Param("heavy_outputs_qos", "reliable", "QoS of ~/overlay and ~/object_points: reliable (history 100, every "
          "message reaches a reliable subscriber) or sensor_data (best effort, history 5: a slow link or a "
          "Jetson drops them instead of queueing; subscribe best effort, e.g. RViz's Reliability Policy)",
          "configure", choices=("reliable", "sensor_data")),
    Param("objects_with_masks", True, "~/objects carries each object's full mask; false: an empty mask image "
          "per object (ids, boxes, areas, scores, centroids stay; the masks are on ~/mask)", "live"),
    Param("diagnostics_period", 1.0, "seconds between /diagnostics messages", "activate", low=0.1,
          high=60.0, read_only=True),
    # lifecycle
    Param("warm_up", False, "at activate, run one grounding and the tracker's paths on synthetic 640x480 frames "
          "(after buffer_downscale), so that the first query does not pay for first-call set-up", "activate"),
    Param("autostart", False, "configure and activate once at start-up (the launch file sets it; later "
          "transitions are left to the user)", "start-up", read_only=True),
)

BY_NAME = {p.name: p for p in PARAMETERS}


def check_value(param: Param, value: Any) -> str | None:
    """Why ``value`` is not acceptable for ``param`` (None when it is)."""
    if isinstance(param.default, bool) != isinstance(value, bool):
        return f"{param.name} must be a {type(param.default).__name__}"
    if param.choices and value not in param.choices:
        return f"{param.name} must be one of {', '.join(param.choices)}; got {value!r}"
    if param.low is not None and not (param.low <= value <= param.high):
        return f"{param.name} must lie in [{param.low}, {param.high}]; got {value!r}"
    if param.pattern and not re.fullmatch(param.pattern, str(value)):
        return f"{param.name} must match {param.pattern}; got {value!r}"
    return None


def check_together(values: dict[str, Any]) -> str | None:
    """Why a set of parameter values does not fit together (None when it does)."""
    if "cameras" in values and re.fullmatch(CAMERAS_PATTERN, values["cameras"]):
        try:
            camera_names(values["cameras"])
        except ValueError as exc:
            return str(exc)
    if values["num_frames"] > values["max_num_frames"]:
        return (f"num_frames ({values['num_frames']}) must not exceed max_num_frames "
                f"({values['max_num_frames']})")
    return None


def check_changes(current: dict[str, Any], changes: list[tuple[str, Any]]) -> str | None:
    """Why setting ``changes`` ((name, value) pairs) over the ``current`` values is refused (None: accepted).

    Each value is checked alone, then all of them together; names not declared here are left to rclpy.
    """
    values = dict(current)
    for name, value in changes:
        param = BY_NAME.get(name)
        if param is None:
            continue
        why = check_value(param, value)
        if why:
            return why
        values[name] = value
    return check_together(values)


def declare_all(node) -> None:
    """Declare every parameter on a rclpy node with a descriptor (ranges, read-only, choices)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    for p in PARAMETERS:
        desc = ParameterDescriptor(
            description=f"{p.description} (takes effect on {p.applies})", read_only=p.read_only,
            additional_constraints=(f"one of: {', '.join(p.choices)}" if p.choices else
                                    f"matches {p.pattern}" if p.pattern else ""))
        if p.low is not None and isinstance(p.default, int) and not isinstance(p.default, bool):
            desc.integer_range = [IntegerRange(from_value=int(p.low), to_value=int(p.high), step=1)]
        elif p.low is not None and isinstance(p.default, float):
            desc.floating_point_range = [FloatingPointRange(from_value=float(p.low), to_value=float(p.high),
                                                            step=0.0)]
        node.declare_parameter(p.name, p.default, desc)


def read_all(node) -> dict[str, Any]:
    return {p.name: node.get_parameter(p.name).value for p in PARAMETERS}
