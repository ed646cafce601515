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
# numpy 2.3+ and pillow 13 need Python 3.11; the others are requirements/core.txt's pins
"$venv/bin/python" -m pip install -q --disable-pip-version-check numpy==2.2.6 pillow==12.3.0 pyyaml==6.0.3 \
  tqdm==4.70.1 rosbags==0.11.9 simplejpeg==1.9.0 pytest==8.4.2
"$venv/bin/python" dev/py310_check.py
# The test files that need no torch: buffering, gates, codecs, geometry, sampling, SaSaSa2VA's plans,
# the re-grounding schedule, metrics and datasets, the synthetic scene, the layout checks. A file
# listed here that starts to need torch fails this job: take it out of the list.
tests=(test_frame_buffer test_transport_gate test_image_codec test_compressed_codec test_geometry test_sampling
       test_sasasa2va_modes test_regrounding_plan test_eval_metrics test_eval_datasets test_eval_sharding
       test_synthetic_scene test_layout test_entry_points)
PYTHONPATH="$root" "$venv/bin/python" -m pytest -q -p no:cacheprovider -o addopts="" $(printf "test/%s.py " "${tests[@]}")
