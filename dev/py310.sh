#!/usr/bin/env bash
# Python 3.10 (JetPack 6) check of the ROS-free package: .venv310 with the small dependencies
# (no torch: see dev/py310_check.py), then compile and import every module. Skipped, and said
# so, where no Python 3.10 interpreter exists (Debian 12 ships 3.11).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=""
for candidate in "${PYTHON310:-}" python3.10 /root/.pyenv/versions/3.10.13/bin/python3.10; do
  [ -n "$candidate" ] || continue
  if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)' >/dev/null 2>&1; then
    py=$candidate; break
  fi
done
if [ -z "$py" ]; then
  echo "[py310] no Python 3.10 interpreter on this machine: check skipped"
  exit 0
fi
venv="$root/.venv310"
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check numpy==2.2.6 pillow==12.3.0 pyyaml==6.0.3  # numpy 2.3+ and pillow 13 need Python 3.11
"$venv/bin/python" dev/py310_check.py
