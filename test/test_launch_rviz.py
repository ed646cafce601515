"""The launch file starts RViz 2 only with rviz:=true, with the shipped config; the config shows our topics.

launch and launch_ros are not on PyPI, so CI cannot run the launch file for
real. Here it is executed against recording stand-ins of their API: every
launch class becomes a plain object keeping its constructor arguments, so the
test sees exactly the actions ``generate_launch_description()`` builds (which
package and executable, which condition, which arguments) without starting
anything. What that cannot show (RViz opening and drawing) is said in the README.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_MODULES = ("launch", "launch.actions", "launch.conditions", "launch.events", "launch.substitutions",
                  "launch.launch_description_sources", "launch_ros", "launch_ros.actions", "launch_ros.descriptions",
                  "launch_ros.event_handlers", "launch_ros.events", "launch_ros.events.lifecycle",
                  "launch_ros.substitutions")


class Recorded:
    """A stand-in launch object: its class name and the arguments it was built with."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __eq__(self, other):
        return type(other) is type(self) and (self.args, self.kwargs) == (other.args, other.kwargs)

    def __repr__(self):
        return f"{type(self).__name__}{self.args}{self.kwargs}"


def _stand_in_module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    classes: dict[str, type] = {}

    def __getattr__(attr):  # noqa: N807 (module-level __getattr__)
        if attr.startswith("__"):
            raise AttributeError(attr)
        return classes.setdefault(attr, type(attr, (Recorded,), {}))

    module.__getattr__ = __getattr__
    module.__path__ = []  # a package, so that submodules import
    return module


@pytest.fixture
def description(monkeypatch):
    for name in LAUNCH_MODULES:
        monkeypatch.setitem(sys.modules, name, _stand_in_module(name))
    spec = importlib.util.spec_from_file_location("segment_launch_under_test", ROOT / "launch" / "segment.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def _entities(description) -> list:
    return list(description.args[0])


def _named(entities, cls: str) -> list:
    return [e for e in entities if type(e).__name__ == cls]


def test_rviz_starts_only_with_the_rviz_argument_and_the_shipped_config(description):
    entities = _entities(description)
    rviz = [e for e in _named(entities, "Node") if e.kwargs.get("package") == "rviz2"]
    assert len(rviz) == 1, entities
    node = rviz[0]
    assert node.kwargs["executable"] == "rviz2"
    condition = node.kwargs["condition"]
    assert type(condition).__name__ == "IfCondition"
    [config] = condition.args
    assert type(config).__name__ == "LaunchConfiguration" and config.args == ("rviz",)
    args = node.kwargs["arguments"]
    assert args[0] == "-d" and type(args[1]).__name__ == "LaunchConfiguration" and args[1].args == ("rviz_config",)

    declared = {e.args[0]: e.kwargs for e in _named(entities, "DeclareLaunchArgument")}
    assert declared["rviz"]["default_value"] == "false"  # off unless asked for
    default = declared["rviz_config"]["default_value"]
    [parts] = default.args
    assert type(parts[0]).__name__ == "FindPackageShare" and parts[0].args == ("sa2va_i_ros",)
    assert list(parts[1:]) == ["config", "sa2va_i.rviz"]
    assert (ROOT / "config" / "sa2va_i.rviz").is_file()
    assert "install(DIRECTORY launch config DESTINATION share/${PROJECT_NAME})" in (ROOT / "CMakeLists.txt").read_text()


def _segment_node(description, **arguments):
    """The node the launch file's OpaqueFunction builds, given the launch arguments ``arguments``."""
    [opaque] = _named(_entities(description), "OpaqueFunction")
    [node] = opaque.kwargs["function"](types.SimpleNamespace(launch_configurations=arguments))
    assert type(node).__name__ == "LifecycleNode"
    return node


def test_the_segment_node_itself_is_unconditional(description):
    node = _segment_node(description)
    assert node.kwargs["package"] == "sa2va_i_ros" and "condition" not in node.kwargs
    assert [r[0] for r in node.kwargs["remappings"]] == ["image", "depth", "camera_info"]  # one camera


def test_cameras_are_remapped_to_realsense_topics_of_each_camera_name(description):
    node = _segment_node(description, cameras="head,wrist", camera_namespace="/camera")
    named = [r for r in node.kwargs["remappings"] if isinstance(r[1], str)]
    assert named == [("head/image", "/camera/head/color/image_raw"),
                     ("head/depth", "/camera/head/aligned_depth_to_color/image_raw"),
                     ("head/camera_info", "/camera/head/color/camera_info"),
                     ("wrist/image", "/camera/wrist/color/image_raw"),
                     ("wrist/depth", "/camera/wrist/aligned_depth_to_color/image_raw"),
                     ("wrist/camera_info", "/camera/wrist/color/camera_info")]
    [params] = [p for p in node.kwargs["parameters"] if isinstance(p, dict)]
    assert type(params["cameras"]).__name__ == "ParameterValue"
    declared = {e.args[0]: e.kwargs for e in _named(_entities(description), "DeclareLaunchArgument")}
    assert declared["cameras"]["default_value"] == "" and declared["camera_namespace"]["default_value"] == "/camera"


def test_rviz_config_shows_the_nodes_topics_in_the_camera_frame():
    config = yaml.safe_load((ROOT / "config" / "sa2va_i.rviz").read_text())
    manager = config["Visualization Manager"]
    displays = {d["Class"]: d for d in manager["Displays"]}
    assert displays["rviz_default_plugins/Image"]["Topic"]["Value"] == "/sa2va_i/overlay"
    markers = displays["rviz_default_plugins/MarkerArray"]
    assert markers["Topic"]["Value"] == "/sa2va_i/markers"
    from sa2va_i_ros.ros.markers import NAMESPACES

    assert set(markers["Namespaces"]) == set(NAMESPACES)
    cloud = displays["rviz_default_plugins/PointCloud2"]
    assert cloud["Topic"]["Value"] == "/sa2va_i/object_points" and cloud["Channel Name"] == "track_id"
    for d in (displays["rviz_default_plugins/Image"], markers, cloud):
        assert d["Enabled"] and d["Topic"]["Reliability Policy"] == "Reliable"  # the node publishes reliably
    from sa2va_i_ros.testing.synthetic.scene import FRAME_ID

    assert manager["Global Options"]["Fixed Frame"] == FRAME_ID
    launch_text = (ROOT / "launch" / "segment.launch.py").read_text()
    assert '("node_name", "sa2va_i"' in launch_text  # the topics above assume the default node name
