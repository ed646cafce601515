"""Which SAM2 propagates: the checkpoint's own (Sa2VA-i, the default) or one of sam2's released models.

Grounding always runs the checkpoint's SAM 2.0 Hiera-L with its finetuned
decoder. The tracker may instead be any SAM 2 / SAM 2.1 model of the ``sam2``
package's own configs, seeded with the grounding's plain masks. Such a model is
built from its config with Sa2VA's overrides (``sam2_model.build_sam2``), so the
propagation is Sa2VA-i's with another model, and loaded strictly from

* a local file: sam2's official ``.pt`` (read with ``torch.load(weights_only=True)``,
  which refuses pickled code) or a ``.safetensors`` file of the same tensors;
* a hub repository holding the official file (``facebook/sam2.1-hiera-tiny``), where
  the machine is online; an empty ``weights`` means the model's official repository.

A weights file may carry a ``sa2va_i_ros_sam2`` entry of architecture sizes (the
project's tiny random-weight test files do; official files do not): the model is
then built at those sizes. Only integer sizes are read from it, never code.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path

import torch

from sa2va_i_ros.errors import CheckpointError, StrictLoadError
from sa2va_i_ros.model.checkpoint.load import HUB_ID
from sa2va_i_ros.model.sam2_model import Sam2Spec, build_sam2

CHECKPOINT = "checkpoint"
SPEC_KEY = "sa2va_i_ros_sam2"


@dataclass(frozen=True)
class TrackerModel:
    """One of sam2's released models: its config, official hub repository and file."""

    name: str
    config: str
    hub_id: str
    filename: str
    version: str  # "2.0" or "2.1"
    size: str  # "t", "s", "b+", "l"


def _models() -> dict[str, TrackerModel]:
    sizes = {"t": "tiny", "s": "small", "b+": "base_plus", "l": "large"}
    out = {}
    for version, prefix in (("2.1", "sam2.1"), ("2.0", "sam2")):
        for size, word in sizes.items():
            name = f"{prefix}_hiera_{size}"
            out[name] = TrackerModel(name, f"configs/{prefix}/{name}.yaml",
                                     f"facebook/{prefix}-hiera-{word.replace('_', '-')}",
                                     f"{prefix}_hiera_{word}.pt", version, size)
    return out


TRACKER_MODELS: dict[str, TrackerModel] = _models()
TRACKER_MODEL_NAMES: tuple[str, ...] = (CHECKPOINT, *TRACKER_MODELS)


class TrackerModelError(CheckpointError):
    """The chosen tracker model cannot be built or its weights cannot be loaded."""


@dataclass(frozen=True)
class TrackerChoice:
    """The propagation model: ``checkpoint`` (default, exact Sa2VA-i) or a sam2 model and its weights.

    ``weights``: a ``.pt`` / ``.safetensors`` file, or a hub id, or "" for the
    model's official hub repository. It must be "" for ``checkpoint``.
    """

    model: str = CHECKPOINT
    weights: str = ""

    def __post_init__(self) -> None:
        if self.model not in TRACKER_MODEL_NAMES:
            raise TrackerModelError(f"unknown tracker model {self.model!r}; choose one of "
                                    f"{', '.join(TRACKER_MODEL_NAMES)}")
        if not isinstance(self.weights, str):
            raise TrackerModelError(f"tracker weights must be a path or a hub id, got {self.weights!r}")
        if self.model == CHECKPOINT and self.weights:
            raise TrackerModelError("tracker weights are only for a sam2 tracker model; the 'checkpoint' "
                                    "tracker uses the SAM2 inside the Sa2VA-i checkpoint")

    @property
    def is_checkpoint(self) -> bool:
        return self.model == CHECKPOINT

    @property
    def info(self) -> TrackerModel | None:
        return TRACKER_MODELS.get(self.model)


def tracker_sam2(choice: TrackerChoice, checkpoint_sam2: torch.nn.Module, device: str | torch.device = "cpu"):
    """The SAM2 the tracker propagates with: the checkpoint's own one, or the chosen model loaded."""
    if choice.is_checkpoint:
        return checkpoint_sam2
    return load_tracker_model(choice, device)


def load_tracker_model(choice: TrackerChoice, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Build ``choice.model`` from sam2's config and load its weights strictly (eval mode, float32)."""
    info = choice.info
    if info is None:
        raise TrackerModelError("the 'checkpoint' tracker is the checkpoint's own SAM2: nothing to load")
    path = _weights_path(choice, info)
    state, spec = read_weights(path)
    model = build_tracker_model(info.name, spec)
    load_strict(model, state, f"{info.name} from {path}")
    return model.to(device).eval()


def build_tracker_model(name: str, spec: Sam2Spec | None = None) -> torch.nn.Module:
    """``name``'s architecture with random weights (at ``spec``'s sizes when given), eval mode, on cpu."""
    info = TRACKER_MODELS.get(name)
    if info is None:
        raise TrackerModelError(f"unknown sam2 model {name!r}; choose one of {', '.join(TRACKER_MODELS)}")
    return build_sam2(spec, "cpu", config=info.config)


def _weights_path(choice: TrackerChoice, info: TrackerModel) -> Path:
    source = choice.weights or info.hub_id
    path = Path(source).expanduser()
    if path.is_file():
        return path
    if path.exists():
        raise TrackerModelError(f"tracker weights {source}: expected a .pt or .safetensors file, found a directory")
    if not HUB_ID.match(source) or source.endswith((".pt", ".pth", ".safetensors")):
        raise TrackerModelError(f"tracker weights {source}: no such file (and not a hub id like owner/name)")
    return Path(_download(source, info))


def _download(repo_id: str, info: TrackerModel) -> str:
    """The official file of ``info`` from hub repository ``repo_id`` (cache, or network when online)."""
    from huggingface_hub import hf_hub_download

    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    try:
        return hf_hub_download(repo_id=repo_id, filename=info.filename, local_files_only=offline)
    except Exception as exc:  # hub errors come in many classes; all mean "not available"
        hint = " (offline mode is on and it is not in the local cache)" if offline else \
            " (check your network, or download it yourself and pass the file)"
        raise TrackerModelError(f"{info.name}: cannot get {info.filename} from the Hugging Face hub repository "
                                f"{repo_id}{hint}: {exc}") from exc


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], Sam2Spec | None]:
    """Tensors of a sam2 weights file and its optional architecture sizes.

    ``.safetensors``: the tensors, sizes in the metadata. Anything else is read
    as sam2's official ``.pt`` ({"model": tensors}) with ``weights_only=True``.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
                meta = (f.metadata() or {}).get(SPEC_KEY)
        except (OSError, SafetensorError) as exc:
            raise TrackerModelError(f"{path}: unreadable safetensors file ({exc})") from exc
        try:
            raw_spec = json.loads(meta) if meta is not None else None
        except json.JSONDecodeError as exc:
            raise TrackerModelError(f"{path}: its {SPEC_KEY} metadata is not JSON ({exc})") from exc
        return state, _spec(raw_spec, path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for code, RuntimeError/EOFError for broken files
        raise TrackerModelError(f"{path}: not a weights-only torch file (pickled code is never loaded): "
                                f"{type(exc).__name__}: {str(exc)[:300]}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise TrackerModelError(f"{path}: expected sam2's checkpoint layout {{'model': {{name: tensor}}}}")
    state = data["model"]
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise TrackerModelError(f"{path}: 'model' holds entries that are not tensors: {bad[:5]}")
    return state, _spec(data.get(SPEC_KEY), path)


def _spec(raw, path: Path) -> Sam2Spec | None:
    """Architecture sizes from a weights file: integers and lists of integers of known fields only."""
    if raw is None:
        return None
    known = {f.name for f in fields(Sam2Spec)}

    def ok(v) -> bool:
        if isinstance(v, list | tuple):
            return all(isinstance(x, int) and not isinstance(x, bool) and 0 < x < 1 << 16 for x in v)
        return isinstance(v, int) and not isinstance(v, bool) and 0 < v < 1 << 16

    if not isinstance(raw, dict) or set(raw) - known or not all(ok(v) for v in raw.values()):
        raise TrackerModelError(f"{path}: malformed {SPEC_KEY} entry (expected positive integer sizes of "
                                f"{', '.join(sorted(known))})")
    return Sam2Spec.from_config(raw)


def load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], name: str) -> None:
    """Fill every parameter and buffer from ``state``, or raise naming what does not match."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(f"{k} (file {tuple(state[k].shape)}, model {tuple(v.shape)})"
                        for k, v in expected.items() if k in state and state[k].shape != v.shape)
    if missing or unexpected or mismatched:
        err = StrictLoadError(missing, unexpected, mismatched)
        raise TrackerModelError(f"{name}: {err} -- are these weights of this model?") from err
    floating = [k for k, v in state.items() if expected[k].is_floating_point() and not v.is_floating_point()]
    if floating:
        raise TrackerModelError(f"{name}: tensors of an integer dtype where the model has floats: {floating[:5]}")
    with torch.no_grad():
        model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)


def save_weights(model: torch.nn.Module, path: str | Path, spec: Sam2Spec | None = None) -> Path:
    """Write ``model``'s tensors as sam2 ships them (``.pt``: {"model": ...}) or as safetensors.

    ``spec`` (sizes of a non-official architecture) goes into the file so that
    ``load_tracker_model`` builds the same architecture.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path), metadata={SPEC_KEY: json.dumps(spec.to_config())} if spec else None)
    else:
        data = {"model": state}
        if spec is not None:
            data[SPEC_KEY] = spec.to_config()
        torch.save(data, path)
    return path
