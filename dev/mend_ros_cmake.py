"""Point the PyPI ROS 2 wheels' CMake files at this interpreter's include dirs.

The kilted wheels export CMake files that name the wheel builder's Python
(``/opt/python/cp311-cp311/include/python3.11``) and its numpy include dir;
CMake stops with "includes non-existent path" until they name ours. Idempotent:
only files that still hold a foreign path are rewritten.

Usage: python dev/mend_ros_cmake.py PREFIX
"""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

import numpy

# /opt/python/cp311-cp311/include/python3.11 and .../site-packages/numpy/_core/include
_PY_INCLUDE = re.compile(r"/opt/python/[^/;\"]+/include/python3\.\d+")
_NUMPY_INCLUDE = re.compile(r"/[^;\"]*?/site-packages/numpy/(?:_core|core)/include")


def mend(prefix: Path) -> list[Path]:
    """Rewrite foreign include paths under PREFIX/share/*/cmake; return changed files."""
    py_include = sysconfig.get_paths()["include"]
    np_include = numpy.get_include()
    changed = []
    for path in sorted(prefix.glob("share/*/cmake/*.cmake")):
        text = path.read_text()
        new = _PY_INCLUDE.sub(py_include, text)
        new = _NUMPY_INCLUDE.sub(np_include, new)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for p in mend(Path(sys.argv[1])):
        print(f"[setup] mended {p}")
