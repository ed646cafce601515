"""Start the Sa2VA-i segment node and drive it to active.

    ros2 launch realsense2_camera rs_launch.py align_depth.enable:=true
    ros2 launch sa2va_i_ros segment.launch.py model:=kumuji/Sa2VA-i-1B device:=cuda use_depth:=true

The topic defaults are realsense2_camera's since 4.54 (``/camera/camera/...``); older drivers
publish ``/camera/color/image_raw``: pass ``image:=/camera/color/image_raw
depth:=/camera/aligned_depth_to_color/image_raw camera_info:=/camera/color/camera_info``.

A faster tracker (docs/TRACKER.md): ``tracker_model:=sam2.1_hiera_t tracker_weights:=sam2.1_hiera_tiny.pt``.

Then: ros2 service call /sa2va_i/segment sa2va_i_ros/srv/Segment "{query: 'the cup left of the bowl', track: true}"

Several cameras, one model (README "A head and a wrist camera"): ``cameras:=head,wrist``. Camera <name>
subscribes to realsense2_camera's topics of ``camera_name:=<name>`` under ``camera_namespace`` (default
``/camera``: ``/camera/head/color/image_raw``, its aligned depth and camera_info) and publishes under
``~/<name>/``; a query names its camera (``camera: head``, or ``"*"`` for every camera).

Every parameter with its default is in config/segment.yaml (params_file); the
arguments below override the most used ones. ``rviz:=true`` starts RViz 2 beside
the node with config/sa2va_i.rviz (overlay, markers and object points). Topics are remapped, never passed
as parameters. If configuring fails (e.g. a wrong model path), the node stays
up, unconfigured: fix the parameter and run `ros2 lifecycle set /sa2va_i configure`.
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

ARGUMENTS = [
    ("model", "kumuji/Sa2VA-i-1B", "checkpoint directory or Hugging Face hub id"),
    ("device", "auto", "cpu, cuda, cuda:N or auto"),
    ("dtype", "auto", "float32, float16, bfloat16 or auto"),
    ("num_frames", "5", "frames the language model sees per query"),
    ("tracker_model", "checkpoint", "SAM2 that propagates: checkpoint (exactly Sa2VA-i) or sam2.1_hiera_t/s/b+/l, "
     "sam2_hiera_t/s/b+/l"),
    ("tracker_weights", "", "weights of a sam2 tracker_model: .pt / .safetensors file or hub id (empty: official)"),
    ("tracker_dtype", "auto", "tracker precision: auto (the model's), float32, float16 or bfloat16"),
    ("tracker_compile", "false", "torch.compile the tracker (CUDA with triton)"),
    ("tracker_channels_last", "false", "channels-last convolutions in the tracker (CUDA)"),
    ("tracker_backend", "torch", "torch (exact) or onnxruntime (the exported graphs, docs/DEPLOYMENT.md)"),
    ("tracker_onnx_dir", "", "onnxruntime backend: sa2va-i-export's folder (empty: exported once into the cache)"),
    ("tracker_preprocess", "pil", "tracker frame resize: pil (exact) or device"),
    ("use_depth", "false", "subscribe to depth + camera_info and publish 3D output"),
    ("image_transport", "raw", "raw, compressed (<image>/compressed, <depth>/compressedDepth) or both"),
    ("image", "/camera/camera/color/image_raw", "RGB image topic (realsense2_camera >= 4.54)"),
    ("depth", "/camera/camera/aligned_depth_to_color/image_raw", "depth topic aligned to the image "
     "(realsense: align_depth.enable:=true)"),
    ("camera_info", "/camera/camera/color/camera_info", "CameraInfo topic of the image"),
    ("cameras", "", "several cameras, one model: comma-separated names (e.g. head,wrist); empty: one camera on "
     "image, depth, camera_info"),
    ("camera_namespace", "/camera", "with cameras: camera <name>'s topics are realsense2_camera's under "
     "<camera_namespace>/<name>/ (its camera_namespace and camera_name)"),
    ("namespace", "", "namespace of the node"),
    ("node_name", "sa2va_i", "name of the node"),
    ("autostart", "true", "configure and activate the node once at start-up"),
    ("log_level", "info", "ROS log level"),
    ("rviz", "false", "start RViz 2 beside the node (rviz_config: overlay, markers, object points)"),
]


CAMERA_TOPICS = (("image", "color/image_raw"), ("depth", "aligned_depth_to_color/image_raw"),
                 ("camera_info", "color/camera_info"))


def camera_remappings(cameras: str, camera_namespace: str) -> list[tuple[str, str]]:
    """Camera <name>'s inputs (``<name>/image``, ...) onto realsense2_camera's topics for camera_name:=<name>."""
    ns = camera_namespace.rstrip("/")
    return [(f"{name}/{topic}", f"{ns}/{name}/{target}") for name in cameras.split(",") if name
            for topic, target in CAMERA_TOPICS]


def segment_node(context):
    """The node, once the arguments are known (the named cameras' remappings depend on ``cameras``)."""
    cfg, values = LaunchConfiguration, context.launch_configurations
    # autostart is done by the node itself, once (a launch event handler on "configured" would also
    # activate after every later manual configure)
    return [LifecycleNode(
        package="sa2va_i_ros", executable="segment_node", name=cfg("node_name"), namespace=cfg("namespace"),
        output="screen", arguments=["--ros-args", "--log-level", cfg("log_level")],
        parameters=[cfg("params_file"), {
            "model": cfg("model"), "device": cfg("device"), "dtype": cfg("dtype"),
            "num_frames": ParameterValue(cfg("num_frames"), value_type=int),
            "tracker_model": cfg("tracker_model"),
            "tracker_weights": ParameterValue(cfg("tracker_weights"), value_type=str),
            "tracker_dtype": cfg("tracker_dtype"),
            "tracker_compile": ParameterValue(cfg("tracker_compile"), value_type=bool),
            "tracker_channels_last": ParameterValue(cfg("tracker_channels_last"), value_type=bool),
            "tracker_backend": cfg("tracker_backend"),
            "tracker_onnx_dir": ParameterValue(cfg("tracker_onnx_dir"), value_type=str),
            "tracker_preprocess": cfg("tracker_preprocess"),
            "use_depth": ParameterValue(cfg("use_depth"), value_type=bool),
            "autostart": ParameterValue(cfg("autostart"), value_type=bool),
            "image_transport": cfg("image_transport"), "cameras": ParameterValue(cfg("cameras"), value_type=str)}],
        remappings=[("image", cfg("image")), ("depth", cfg("depth")), ("camera_info", cfg("camera_info")),
                    *camera_remappings(values.get("cameras", ""), values.get("camera_namespace", "/camera"))])]


def generate_launch_description():
    share = FindPackageShare("sa2va_i_ros")
    declared = [DeclareLaunchArgument(name, default_value=default, description=desc)
                for name, default, desc in ARGUMENTS]
    declared.append(DeclareLaunchArgument(
        "params_file", default_value=PathJoinSubstitution([share, "config", "segment.yaml"]),
        description="YAML file with every parameter of the node"))
    declared.append(DeclareLaunchArgument(
        "rviz_config", default_value=PathJoinSubstitution([share, "config", "sa2va_i.rviz"]),
        description="RViz 2 configuration used with rviz:=true"))
    cfg = LaunchConfiguration
    rviz = Node(package="rviz2", executable="rviz2", name="rviz2", output="log",
                arguments=["-d", cfg("rviz_config")], condition=IfCondition(cfg("rviz")))
    return LaunchDescription([*declared, OpaqueFunction(function=segment_node), rviz])
