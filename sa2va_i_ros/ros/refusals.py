"""What a refused lifecycle transition tells the operator: the reason and the parameter to change.

``ros2 lifecycle set /sa2va_i configure`` prints only "Transitioning failed";
the node logs ONE line at ERROR with this text and shows the same text on
/diagnostics (the model status), so the operator learns what went wrong and
which parameter to change without reading a traceback.
"""

from __future__ import annotations

import re
from typing import Any

from sa2va_i_ros.ros.parameters import PARAMETERS

# what to change when the reason names no parameter, by the kind of failure
_BY_KIND = ((ImportError, ("device", "tracker_backend")), (MemoryError, ("device", "dtype", "buffer_max_megabytes")),
            (OSError, ("model",)))


def parameters_to_change(reason: str, exc: BaseException | None, values: dict[str, Any]) -> list[str]:
    """The parameters a refusal is about: named in the reason; else those whose value the reason quotes (a
    path, a model name); else by the kind of failure; else ``model``."""
    names = [p.name for p in PARAMETERS if re.search(rf"(?<![\w.]){re.escape(p.name)}(?![\w.])", reason)]
    if names:
        return names
    quoted = [name for name, v in values.items()
              if isinstance(v, str) and len(v) >= 3 and v in reason and name in {p.name for p in PARAMETERS}]
    if quoted:
        return quoted
    if "out of memory" in reason.lower():
        return ["device", "dtype", "tracker_dtype"]
    for kind, params in _BY_KIND:
        if isinstance(exc, kind):
            return list(params)
    return ["model"]


def refusal(transition: str, exc: BaseException, values: dict[str, Any], stays: str = "unconfigured") -> str:
    """One line: what was refused, why, and which parameter(s) to change (``ros2 param set`` them, then
    ``ros2 lifecycle set`` again)."""
    reason = str(exc) or repr(exc)
    reason = " ".join(reason.split())  # one line, whatever the exception's text
    params = parameters_to_change(reason, exc, values)
    return (f"{transition} failed, the node stays {stays}: {reason} (change parameter "
            f"{', '.join(params)}; then {transition} again)")
