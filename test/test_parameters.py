"""Parameters: one declaration, config/segment.yaml and the launch file kept in step with it."""

import ast
from pathlib import Path

import yaml

from sa2va_i_ros.ros.parameters import BY_NAME, PARAMETERS, check_changes, check_value

ROOT = Path(__file__).resolve().parents[1]


def test_config_yaml_lists_every_parameter_with_its_default():
    values = yaml.safe_load((ROOT / "config" / "segment.yaml").read_text())["/**"]["ros__parameters"]
    assert set(values) == set(BY_NAME)
    for p in PARAMETERS:
        assert values[p.name] == p.default and type(values[p.name]) is type(p.default), p.name


def test_config_and_readme_are_the_generated_ones():
    """dev/param_docs.py writes both from the declarations; nothing was edited by hand since."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("param_docs", ROOT / "dev" / "param_docs.py")
    docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(docs)
    assert (ROOT / "config" / "segment.yaml").read_text() == docs.config_yaml()
    assert docs.readme_table() in (ROOT / "README.md").read_text()
    assert all(f"`{p.name}`" in docs.readme_table() for p in PARAMETERS)


def test_defaults_pass_their_own_checks_and_bad_values_are_refused():
    for p in PARAMETERS:
        assert check_value(p, p.default) is None, p.name
    assert "one of" in check_value(BY_NAME["sampling"], "random")
    assert "[1, 64]" in check_value(BY_NAME["num_frames"], 0)
    assert "must be a bool" in check_value(BY_NAME["use_depth"], 1)


def test_a_change_is_checked_alone_then_with_the_current_values():
    current = {p.name: p.default for p in PARAMETERS}
    assert check_changes(current, [("num_frames", 8), ("max_num_frames", 16), ("not_ours", "x")]) is None
    assert "one of" in check_changes(current, [("sampling", "random")])
    assert "must not exceed" in check_changes(current, [("num_frames", 40)])  # max_num_frames 32
    assert check_changes(current, [("max_num_frames", 64), ("num_frames", 40)]) is None  # together they fit
    assert current["num_frames"] == BY_NAME["num_frames"].default  # the current values are left as they were


def test_image_qos_names_give_their_reliability_at_the_queue_depth():
    from rclpy.qos import ReliabilityPolicy

    from sa2va_i_ros.ros.camera_inputs import camera_qos

    assert camera_qos("sensor_data", 2).reliability == ReliabilityPolicy.BEST_EFFORT
    assert camera_qos("reliable", 3).reliability == ReliabilityPolicy.RELIABLE
    assert camera_qos("system_default", 4).reliability == ReliabilityPolicy.SYSTEM_DEFAULT
    assert {camera_qos(name, 5).depth for name in ("sensor_data", "reliable", "system_default")} == {5}


def test_launch_file_declares_the_documented_arguments():
    tree = ast.parse((ROOT / "launch" / "segment.launch.py").read_text())
    assigned = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "ARGUMENTS")
    names = {elt.elts[0].value for elt in assigned.value.elts}
    assert {"model", "device", "dtype", "num_frames", "image", "depth", "camera_info", "namespace",
            "use_depth"} <= names
    readme = (ROOT / "README.md").read_text()
    assert all(f"`{n}`" in readme for n in names)


def _launch_arguments() -> dict[str, str]:
    """Launch argument name -> default, from the launch file's ARGUMENTS table."""
    tree = ast.parse((ROOT / "launch" / "segment.launch.py").read_text())
    table = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "ARGUMENTS")
    return {elt.elts[0].value: elt.elts[1].value for elt in table.value.elts}


def _parameters_fed_by_launch() -> dict[str, tuple[str, str | None]]:
    """Parameter -> (launch argument, value_type) from the node's ``parameters=[..., {...}]`` in the launch file."""
    tree = ast.parse((ROOT / "launch" / "segment.launch.py").read_text())
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "LifecycleNode")
    params = next(kw.value for kw in node.keywords if kw.arg == "parameters")
    (mapping,) = [e for e in params.elts if isinstance(e, ast.Dict)]
    fed = {}
    for key, value in zip(mapping.keys, mapping.values, strict=True):
        value_type = None
        if isinstance(value, ast.Call) and value.func.id == "ParameterValue":
            value_type = next(kw.value.id for kw in value.keywords if kw.arg == "value_type")
            value = value.args[0]
        assert isinstance(value, ast.Call) and value.func.id == "cfg", ast.dump(value)
        fed[key.value] = (value.args[0].value, value_type)
    return fed


def test_launch_arguments_feed_declared_parameters():
    """Each launch argument given to the node names a declared parameter, with its type; its default is valid."""
    fed, arguments = _parameters_fed_by_launch(), _launch_arguments()
    assert {"model", "device", "dtype", "num_frames", "use_depth", "image_transport", "tracker_model",
            "tracker_weights", "tracker_dtype", "tracker_compile", "tracker_channels_last"} <= set(fed)
    for name, (argument, value_type) in fed.items():
        assert name in BY_NAME, f"the launch file sets {name!r}, which the node does not declare"
        assert argument in arguments, f"{name!r} is fed from an undeclared launch argument {argument!r}"
        default = BY_NAME[name].default
        expected_type = {bool: "bool", int: "int", float: "float"}.get(type(default))
        if value_type == "str":  # a string kept a string whatever it looks like (a path, an empty value)
            expected_type = "str" if isinstance(default, str) else "not str"
        assert value_type == expected_type, f"{name!r} reaches the node as {value_type}, declared {type(default)}"
        text = arguments[argument]
        value = {"bool": lambda t: t == "true", "int": int, "float": float}.get(value_type, str)(text)
        assert check_value(BY_NAME[name], value) is None, (name, text)


def test_input_topic_defaults_are_realsense_4_54_names():
    """realsense2_camera >= 4.54 publishes /<namespace>/<camera name>/... with both 'camera' (deployment-facts:
    realsense-ros PR #2857); the defaults and the synthetic bag use those names, so the bag replays onto them."""
    from sa2va_i_ros.testing.synthetic.bag_writer import COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC

    expected = {"image": "/camera/camera/color/image_raw",
                "depth": "/camera/camera/aligned_depth_to_color/image_raw",
                "camera_info": "/camera/camera/color/camera_info"}
    arguments = _launch_arguments()
    assert {k: arguments[k] for k in expected} == expected
    assert tuple(expected.values()) == (COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC)
