#!/usr/bin/env bash
# Create .venv and install everything the project needs on a machine without a
# ROS distro or a GPU (Debian 12, Python 3.11 or 3.12): pinned Python packages,
# ROS 2 kilted wheels, sam2, this package (editable), and its interfaces built
# with rosidl into the venv. Idempotent: a run with nothing changed only checks
# a fingerprint and exits.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv="$root/.venv"
stamp="$venv/.sa2va-i-ros-setup"

log() { printf '[setup] %s\n' "$*" >&2; }

pick_python() {
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3; do
    [ -n "$candidate" ] || continue
    command -v "$candidate" >/dev/null 2>&1 || continue
    if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] in ((3, 11), (3, 12)) else 1)'; then
      echo "$candidate"; return 0
    fi
  done
  echo "dev/setup.sh: needs Python 3.11 or 3.12 (the ROS 2 kilted wheels exist only for those)" >&2
  return 1
}

# Everything whose change means the venv must be brought up to date.
fingerprint() {
  cat requirements/*.txt setup.py pyproject.toml package.xml CMakeLists.txt \
      msg/*.msg srv/*.srv action/*.action dev/setup.sh dev/build_interfaces.sh \
      dev/mend_ros_cmake.py scripts/* 2>/dev/null | sha256sum | cut -d' ' -f1
}

want=$(fingerprint)
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  log "up to date (.venv)"
  exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
  py=$(pick_python)
  log "creating .venv with $($py --version)"
  "$py" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)

# torch first, pinned, so that nothing below can swap in a CUDA build.
if "$venv/bin/python" -c 'import torch, sys; sys.exit(0 if torch.version.cuda else 1)' 2>/dev/null; then
  log "keeping the CUDA build of torch already in .venv"
else
  log "installing torch (CPU build)"
  "${pip[@]}" install -q -r requirements/torch-cpu.txt
fi
torch_pin=$("$venv/bin/python" -c 'import torch; print("torch==" + torch.__version__)')
constraints="$venv/.torch-constraint.txt"
echo "$torch_pin" > "$constraints"

log "installing pinned Python packages and ROS 2 wheels"
"${pip[@]}" install -q -c "$constraints" \
  -r requirements/dev.txt -r requirements/core.txt -r requirements/onnx.txt -r requirements/ros-wheels.txt

log "installing sam2 without its dependencies (pure Python, no CUDA extension)"
SAM2_BUILD_CUDA=0 "${pip[@]}" install -q --no-deps --no-build-isolation -r requirements/sam2.txt

log "installing sa2va_i_ros in editable mode"
"${pip[@]}" install -q --no-deps --no-build-isolation -e .

log "building the ROS interfaces into .venv"
VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" bash dev/build_interfaces.sh

"$venv/bin/python" - <<'EOF'
import torch, transformers, sam2, rclpy  # noqa: F401  (a failed import stops setup here)
from sa2va_i_ros.msg import TrackedObject  # noqa: F401
print(f"[setup] ok: torch {torch.__version__}, transformers {transformers.__version__}, "
      "sam2, rclpy and the sa2va_i_ros interfaces import", flush=True)
EOF
echo "$want" > "$stamp"
