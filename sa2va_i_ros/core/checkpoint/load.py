"""Find a checkpoint (directory or hub id) and load it strictly from safetensors.

Strict means: every tensor on disk fills a parameter, every parameter is filled,
every shape matches; otherwise ``StrictLoadError`` names what is missing, left
over or mis-shaped. Only safetensors are read (no pickle, no remote code).
Tensors are copied one at a time into the already-built model, so loading needs
no second copy of the weights in memory.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import CheckpointError, StrictLoadError
from . import keys

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*"]


def resolve(model: str, revision: str | None = None) -> Path:
    """A local directory for ``model``: the path itself, or a hub snapshot.

    Hub downloads go through huggingface_hub (its progress bars, its cache) and
    honour offline mode (``HF_HUB_OFFLINE=1``): then only the cache is used.
    """
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CheckpointError(f"{model}: expected a checkpoint directory, found a file")
        return path
    if not HUB_ID.match(model):
        raise CheckpointError(f"{model}: no such checkpoint directory (and not a hub id like owner/name)")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - huggingface_hub is a core dependency
        raise CheckpointError(f"{model}: huggingface_hub is needed to download hub checkpoints") from exc
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    try:
        return Path(snapshot_download(repo_id=model, revision=revision, allow_patterns=HUB_PATTERNS,
                                      local_files_only=offline))
    except Exception as exc:  # hub errors come in many classes; all mean "not available"
        hint = (" (offline mode is on and it is not in the local cache)" if offline
                else " (check the name, your network and, for gated repos, your token)")
        raise CheckpointError(f"{model}: cannot get it from the Hugging Face hub{hint}: {exc}") from exc


def tensor_files(directory: Path, name: str) -> list[Path]:
    """The safetensors files of a checkpoint (sharded or not)."""
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{name}: unreadable {index.name} ({exc})") from exc
        files = sorted({directory / f for f in weight_map.values()})
    elif (directory / "model.safetensors").is_file():
        files = [directory / "model.safetensors"]
    else:
        pickled = sorted(p.name for p in directory.glob("*.bin")) + sorted(p.name for p in directory.glob("*.pt"))
        extra = f" (found {', '.join(pickled)}: pickle files are never loaded)" if pickled else ""
        raise CheckpointError(f"{name}: no model.safetensors or model.safetensors.index.json in {directory}{extra}")
    absent = [f.name for f in files if not f.is_file()]
    if absent:
        raise CheckpointError(f"{name}: shard(s) listed in the index are missing: {', '.join(absent)}")
    return files


@dataclass(frozen=True)
class DiskTensor:
    file: Path
    name: str
    shape: tuple[int, ...]


def read_tensor_names(files: Iterable[Path], name: str) -> dict[str, DiskTensor]:
    """Name -> (file, shape) of every tensor, reading headers only."""
    from safetensors import safe_open

    found: dict[str, DiskTensor] = {}
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as f:
                for key in f.keys():  # noqa: SIM118  (safe_open is not a dict)
                    found[key] = DiskTensor(file, key, tuple(f.get_slice(key).get_shape()))
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(f"{name}: {file.name} is not a readable safetensors file ({exc})") from exc
    return found


def _plan(expected: dict[str, torch.Size], disk: dict[str, DiskTensor], sa2va_i: bool,
          original: dict[str, DiskTensor] | None, optional: set[str]) -> list[tuple[DiskTensor, list[str]]]:
    """Match disk tensors to parameters; raise StrictLoadError on any gap."""
    plan: list[tuple[DiskTensor, list[str]]] = []
    filled: set[str] = set()
    unexpected, mismatched = [], []
    for disk_name, t in disk.items():
        targets = keys.expand(disk_name, sa2va_i)
        if not targets or any(tg not in expected for tg in targets):
            unexpected.append(disk_name)
            continue
        shape = (t.shape[0] // 3, *t.shape[1:]) if len(targets) == 3 else t.shape
        bad = [tg for tg in targets if tuple(expected[tg]) != tuple(shape)]
        if bad or (len(targets) == 3 and t.shape[0] % 3):
            mismatched.append(f"{disk_name} {list(t.shape)} vs {targets[0]} {list(expected[targets[0]])}")
            continue
        plan.append((t, targets))
        filled.update(targets)
    for disk_name, t in (original or {}).items():
        tg = keys.original_decoder_name(disk_name)
        if tg is None:
            continue  # only the original decoder is taken from a SAM 2.0 checkpoint
        if tg not in expected:
            unexpected.append(f"{t.file.name}:{disk_name}")
        elif tuple(expected[tg]) != t.shape:
            mismatched.append(f"{t.file.name}:{disk_name} {list(t.shape)} vs {tg} {list(expected[tg])}")
        else:
            plan.append((t, [tg]))
            filled.add(tg)
    missing = sorted(set(expected) - filled - optional)
    if missing or unexpected or mismatched:
        raise StrictLoadError(missing, sorted(unexpected), mismatched)
    return plan


@torch.no_grad()
def load_weights(model: torch.nn.Module, directory: Path, name: str,
                 original_sam2: Path | None = None) -> dict:
    """Fill every parameter of ``model`` (a ``Sa2VAModel``) from the checkpoint.

    Returns a small report: the number of tensors read, whether the file is a
    Sa2VA-i checkpoint (both decoders) and where the original decoder came from.
    """
    disk = read_tensor_names(tensor_files(directory, name), name)
    sa2va_i = keys.is_sa2va_i(set(disk))
    original = None
    if not sa2va_i:
        if original_sam2 is None:
            raise CheckpointError(
                f"{name} is a plain Sa2VA checkpoint: its sam_mask_decoder is the Sa2VA-finetuned one, and "
                "Sa2VA-i propagates with the ORIGINAL SAM 2.0 decoder, which it does not contain. Name a "
                "SAM 2.0 Hiera-L checkpoint in safetensors (original_sam2 / --original-sam2; convert "
                "sam2_hiera_large.pt with `sa2va-i-convert-sam2`), or use a Sa2VA-i checkpoint "
                "(kumuji/Sa2VA-i-*), which holds both decoders.")
        original_sam2 = Path(original_sam2).expanduser()
        if not original_sam2.is_file():
            raise CheckpointError(f"original SAM 2.0 checkpoint {original_sam2} does not exist")
        original = read_tensor_names([original_sam2], str(original_sam2))
    expected = model.parameter_names()
    optional = {"language_model.lm_head.weight"} if model.tied_lm_head else set()
    plan = _plan(expected, disk, sa2va_i, original, optional)

    from safetensors import safe_open

    params = model.state_dict(keep_vars=True)
    by_file: dict[Path, list[tuple[DiskTensor, list[str]]]] = {}
    for t, targets in plan:
        by_file.setdefault(t.file, []).append((t, targets))
    for file, items in by_file.items():
        with safe_open(str(file), framework="pt") as f:
            for t, targets in items:
                tensor = f.get_tensor(t.name)
                parts = keys.qkv_chunks(tensor) if len(targets) == 3 else (tensor,)
                for target, part in zip(targets, parts, strict=True):
                    params[target].data.copy_(part)
    return {"tensors": len(disk), "sa2va_i": sa2va_i,
            "original_decoder": "checkpoint" if sa2va_i else str(original_sam2)}
