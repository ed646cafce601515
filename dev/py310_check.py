"""Python 3.10 check of the ROS-free package: every module compiles, and imports unless a heavy dependency is absent.

Run by dev/py310.sh in a Python 3.10 venv that has the small pure-Python
dependencies but no torch: PyPI's Linux torch wheels for cp310 are CUDA builds
(~0.5 GB plus several GB of nvidia packages) and the CPU builds live on an index
this project's machines cannot reach (README, "Python versions"). A module whose
import stops at torch, transformers, sam2, onnx or rclpy is counted as such; any
other import error (a 3.11-only name, syntax) fails the check.
"""

from __future__ import annotations

import compileall
import importlib
import pkgutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "sam2", "hydra", "onnx", "onnxruntime", "onnxscript", "rclpy", "rosbags", "av",
         "safetensors", "tokenizers", "huggingface_hub", "sentencepiece", "simplejpeg", "matplotlib", "tqdm")


def main() -> int:
    assert sys.version_info[:2] == (3, 10), sys.version
    if not compileall.compile_dir(str(ROOT / "sa2va_i_ros"), quiet=1, force=True):
        print("[py310] some modules do not compile on Python 3.10")
        return 1
    sys.path.insert(0, str(ROOT))
    imported, needs, bad = [], {}, []
    import sa2va_i_ros

    for info in pkgutil.walk_packages(sa2va_i_ros.__path__, "sa2va_i_ros."):
        if info.name.startswith(("sa2va_i_ros.ros", "sa2va_i_ros.msg", "sa2va_i_ros.srv", "sa2va_i_ros.action")):
            continue
        try:
            importlib.import_module(info.name)
            imported.append(info.name)
        except ModuleNotFoundError as exc:
            top = (exc.name or "").split(".")[0]
            if top in HEAVY:
                needs.setdefault(top, []).append(info.name)
            else:
                bad.append(f"{info.name}: {exc!r}")
        except Exception as exc:  # a 3.11-only API or any other failure at import
            bad.append(f"{info.name}: {exc!r}")
    print(f"[py310] {len(imported)} modules import on {sys.version.split()[0]}; "
          + "; ".join(f"{len(v)} stop at {k} (not installed)" for k, v in sorted(needs.items())))
    for line in bad:
        print(f"[py310] FAILED {line}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
