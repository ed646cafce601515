"""The evaluation settings a run (or an ablation grid) varies, and the registry that exposes them.

Every field of ``EvalSettings`` declared with ``knob(...)`` is a setting: it
gets a command-line option (``--num-frames``), can be an axis of ``--grid``
(``num_frames=5,8``), is checked by ``--resume``, names a column of the
ablation table and is handed to the model:

* ``stage="call"``: passed to ``segmenter.segment(frames, query, **call_kwargs)``;
* ``stage="load"``: passed to ``load_segmenter(..., **load_kwargs)``; the grid
  loads one model per distinct combination of load-stage values and reuses it.

A setting whose default is None is optional: None means "not given", is not
passed to the model (its own default applies) and is shown as "-".

Adding a setting is one field here (see /work/official/NOTES.md and
docs/EVALUATION.md); the tool needs no other change.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sa2va_i_ros.grounding.sasasa2va.modes import MODES as SASASA2VA_MODES
from sa2va_i_ros.model.sampling import SAMPLING_MODES, sample_indices, unique_in_order


class SettingsError(ValueError):
    """A setting or a grid axis is unknown or has a value it does not take."""


@dataclass(frozen=True)
class Knob:
    """What the tool knows of one setting (the ``metadata`` of its field)."""

    parse: Callable[[str], object]
    choices: tuple | None
    label: str  # column header of the ablation table
    help: str
    stage: str  # "call" or "load"
    show: Callable[[EvalSettings], str] | None = None  # how the table shows the value (default str)


def knob(default, *, label: str, help: str, parse: Callable[[str], object] = str, choices: Sequence | None = None,
         stage: str = "call", show: Callable[[EvalSettings], str] | None = None):
    """A dataclass field that is an evaluation setting (see the module docstring)."""
    if stage not in ("call", "load"):
        raise ValueError(f"stage must be 'call' or 'load', got {stage!r}")
    spec = Knob(parse, None if choices is None else tuple(choices), label, help, stage, show)
    return field(default=default, metadata={"knob": spec})


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise SettingsError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise SettingsError(f"must be at least 1, got {value}")
    return value


def _prompt_frames_shown(s: EvalSettings) -> str:
    return "first (1)" if s.prompt_frames == "first" else f"all ({s.num_frames})"


def _mode_shown(s: EvalSettings) -> str:
    return "-" if s.mode is None else f"SaSaSa2VA {s.mode}"


@dataclass(frozen=True)
class EvalSettings:
    """One evaluation setting. New settings: one ``knob`` field each (docs/EVALUATION.md)."""

    num_frames: int = knob(5, parse=positive_int, label="MLLM frames",
                           help="frames the language model sees (default 5, Sa2VA-i's evaluation)")
    sampling: str = knob("uniform", choices=SAMPLING_MODES, label="sampling",
                         help="which frames it sees: Sa2VA-i's uniform (default) or Sa2VA's first N")
    prompt_frames: str = knob("all", choices=("all", "first"), label="SAM2 prompt frames", show=_prompt_frames_shown,
                              help="SAM2 prompted with the mask of every sampled frame (default) or the first only")
    mode: str | None = knob(None, choices=SASASA2VA_MODES, label="SaSaSa2VA mode", show=_mode_shown,
                            help="SaSaSa2VA checkpoints only: inference mode (default uniform; docs/SASASA2VA.md)")

    tracker_model: str | None = knob(None, parse=lambda text: _tracker_model(text), stage="load", label="tracker",
                                     show=lambda s: s.tracker_model or "checkpoint",
                                     help="propagation model: checkpoint (default: the checkpoint's SAM2, exact "
                                          "Sa2VA-i), sam2.1_hiera_t/s/b+/l or sam2_hiera_t/s/b+/l (docs/TRACKER.md)")
    tracker_weights: str | None = knob(None, stage="load", label="tracker weights",
                                       help="its weights: a .pt/.safetensors file or a hub id (default: its "
                                            "official hub repository)")
    tracker_backend: str | None = knob(None, choices=("torch", "onnxruntime"), stage="load", label="tracker backend",
                                       show=lambda s: s.tracker_backend or "torch",
                                       help="torch (default: sam2's modules) or onnxruntime (their exported graphs, "
                                            "float32; docs/DEPLOYMENT.md)")
    tracker_onnx_dir: str | None = knob(None, stage="load", label="tracker ONNX graphs",
                                        help="the graphs from sa2va-i-export (default: exported once into the cache)")

    def __post_init__(self):
        for name, spec in knobs().items():
            value = getattr(self, name)
            if spec.choices is not None and value not in spec.choices and not _optional_unset(name, value):
                raise SettingsError(f"{name} must be one of {', '.join(map(str, spec.choices))}, got {value!r}")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def call_kwargs(self) -> dict:
        """What ``segmenter.segment`` takes (optional settings only when given)."""
        return self._kwargs("call")

    def load_kwargs(self) -> dict:
        """What ``load_segmenter`` takes beyond model, device, dtype (empty unless a load-stage knob exists)."""
        return self._kwargs("load")

    def _kwargs(self, stage: str) -> dict:
        return {n: getattr(self, n) for n, s in knobs().items()
                if s.stage == stage and not _optional_unset(n, getattr(self, n))}

    def load_key(self) -> tuple:
        """Settings with equal keys share one loaded model."""
        return tuple(sorted(self.load_kwargs().items()))

    def shown(self, name: str) -> str:
        spec = knobs()[name]
        if spec.show:
            return spec.show(self)
        return "-" if _optional_unset(name, getattr(self, name)) else str(getattr(self, name))

    def slug(self, names: Sequence[str]) -> str:
        """Folder name of a grid cell: ``num_frames=5,sampling=uniform`` (unsafe characters replaced)."""
        text = ",".join(f"{n}={getattr(self, n)}" for n in names)
        return re.sub(r"[^A-Za-z0-9_.,=+-]", "_", text) or "default"

    def frames_seen(self, num_video_frames: int) -> int | None:
        """Distinct frames the language model sees on a video of that length (None for other samplers)."""
        if self.mode is not None or self.sampling not in SAMPLING_MODES:
            return None  # SaSaSa2VA shows it 100 frames in clips, by its own plan
        return len(unique_in_order(sample_indices(num_video_frames, self.num_frames, self.sampling)))


def _tracker_model(text: str) -> str:
    from sa2va_i_ros.tracking.models import TRACKER_MODEL_NAMES  # torch: only when the option is given

    if text not in TRACKER_MODEL_NAMES:
        raise SettingsError(f"unknown tracker model {text!r}; choose one of {', '.join(TRACKER_MODEL_NAMES)}")
    return text


def _optional_unset(name: str, value) -> bool:
    return value is None and _DEFAULTS[name] is None


def knobs() -> dict[str, Knob]:
    """name -> Knob, in declaration order."""
    return {f.name: f.metadata["knob"] for f in dataclasses.fields(EvalSettings) if "knob" in f.metadata}


def parse_value(name: str, text: str):
    spec = knobs().get(name)
    if spec is None:
        raise SettingsError(f"unknown setting {name!r}; settings: {', '.join(knobs())}")
    try:
        value = spec.parse(text)
    except SettingsError as exc:
        raise SettingsError(f"{name}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{name}: cannot read {text!r} ({exc})") from None
    if spec.choices is not None and value not in spec.choices:
        raise SettingsError(f"{name} must be one of {', '.join(map(str, spec.choices))}, got {text!r}")
    return value


def parse_grid(axes: Sequence[str]) -> list[tuple[str, list]]:
    """``["num_frames=5,8", "sampling=uniform,first"]`` -> [("num_frames", [5, 8]), ("sampling", [...])]."""
    out: list[tuple[str, list]] = []
    for axis in axes:
        name, sep, values = axis.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not values.strip():
            raise SettingsError(f"grid axis {axis!r}: expected NAME=V1,V2,... (settings: {', '.join(knobs())})")
        if name in (n for n, _ in out):
            raise SettingsError(f"grid axis {name!r} given twice")
        parsed = [parse_value(name, v.strip()) for v in values.split(",")]
        if len(set(parsed)) != len(parsed):
            raise SettingsError(f"grid axis {name!r} repeats a value: {values}")
        out.append((name, parsed))
    return out


def expand_grid(base: EvalSettings, axes: Sequence[tuple[str, list]]) -> list[EvalSettings]:
    """Every combination, the first axis varying slowest; settings outside the grid keep ``base``'s values."""
    names = [n for n, _ in axes]
    return [dataclasses.replace(base, **dict(zip(names, combo, strict=True)))
            for combo in itertools.product(*(values for _, values in axes))]


def add_arguments(parser) -> None:
    """One ``--name`` option per setting, defaulting to the dataclass default."""
    defaults = EvalSettings()
    for name, spec in knobs().items():
        parser.add_argument("--" + name.replace("_", "-"), dest=name, default=getattr(defaults, name),
                            type=_argparse_type(name), choices=spec.choices, help=spec.help)


def from_args(args) -> EvalSettings:
    return EvalSettings(**{name: getattr(args, name) for name in knobs()})


def _argparse_type(name: str):
    import argparse

    def convert(text: str):
        try:
            return knobs()[name].parse(text)
        except (SettingsError, TypeError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name
    return convert


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(EvalSettings)}
