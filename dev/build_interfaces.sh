#!/usr/bin/env bash
# Build this package's msg/srv/action interfaces with rosidl from the PyPI ROS 2
# wheels and install them into the active venv (no colcon, no ROS distro).
# The Python sources are not installed here: `pip install -e .` provides them.
# INTERFACES_PREFIX=<dir> installs them there instead (a second worktree beside a shared venv); then run with
# PYTHONPATH=<dir>/lib/python3.11/site-packages and LD_LIBRARY_PATH=<dir>/lib.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
: "${VIRTUAL_ENV:?activate the venv first (or run dev/setup.sh)}"
py="$VIRTUAL_ENV/bin/python"
prefix="${INTERFACES_PREFIX:-$VIRTUAL_ENV}"
build="$prefix/build/sa2va_i_ros"
mkdir -p "$build"

# The wheels' exported CMake files name the wheel builder's interpreter paths.
"$py" "$root/dev/mend_ros_cmake.py" "$VIRTUAL_ENV"

export AMENT_PREFIX_PATH="$VIRTUAL_ENV" CMAKE_PREFIX_PATH="$VIRTUAL_ENV"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$prefix" -DPython3_EXECUTABLE="$py" \
  -DSA2VA_I_ROS_INSTALL_PYTHON=OFF -DBUILD_TESTING=OFF >"$build.configure.log" 2>&1 \
  || { tail -40 "$build.configure.log" >&2; exit 1; }
cmake --build "$build" -j "$(nproc)" >"$build.build.log" 2>&1 \
  || { tail -40 "$build.build.log" >&2; exit 1; }
cmake --install "$build" >"$build.install.log" 2>&1 \
  || { tail -40 "$build.install.log" >&2; exit 1; }
