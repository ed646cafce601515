"""Find a checkpoint (directory or hub id) and load it strictly from safetensors.

Strict means: every tensor on disk fills a parameter, every parameter is filled,
every shape matches; otherwise ``StrictLoadError`` names what is missing, left
over or mis-shaped. Only safetensors are read (no pickle, no remote code).
The network is built without weights (meta parameters, ``materialise``), each
tensor is allocated in its final dtype and device and read straight into it
(``stream``), so loading needs no second copy of the weights in memory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

import torch

from sa2va_i_ros.errors import CheckpointError, StrictLoadError
from sa2va_i_ros.model.checkpoint import keys, materialise, stream

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


def read_tensor_names(files: Iterable[Path], name: str) -> dict[str, stream.Entry]:
    """Name -> where it lies (file, dtype, shape, bytes) of every tensor, reading headers only."""
    found: dict[str, stream.Entry] = {}
    for file in files:
        found.update(stream.read_header(file, name))
    return found


# (our tensor name, row pieces) per disk tensor
Plan = list[tuple[stream.Entry, list[tuple[str, list[stream.Piece]]]]]


def _fits(pieces: list[stream.Piece], disk: tuple[int, ...], ours: tuple[int, ...]) -> bool:
    rows = sum(n for _, n, _ in pieces)
    if not disk or not ours:
        return disk == ours
    return rows == ours[0] and tuple(disk[1:]) == tuple(ours[1:]) and \
        all(s >= 0 and s + n <= disk[0] and d >= 0 and d + n <= ours[0] for s, n, d in pieces)


def _plan(expected: dict[str, torch.Size], disk: dict[str, stream.Entry], layout: keys.Layout,
          original: dict[str, stream.Entry] | None, optional: set[str]) -> Plan:
    """Match disk tensors to parameters; raise StrictLoadError on any gap."""
    plan: Plan = []
    filled: set[str] = set()
    unexpected, mismatched = [], []
    for disk_name, t in disk.items():
        found = keys.targets(disk_name, t.shape, layout)
        if not found or any(tg not in expected for tg, _ in found):
            unexpected.append(disk_name)
            continue
        bad = [tg for tg, pieces in found if not _fits(pieces, t.shape, tuple(expected[tg]))]
        if not bad and sum(n for _, pieces in found for _, n, _ in pieces) != t.rows:
            bad = [found[0][0]]  # a fused tensor whose rows the parts do not cover exactly
        if bad:
            mismatched.append(f"{disk_name} {list(t.shape)} vs {bad[0]} {list(expected[bad[0]])}")
            continue
        plan.append((t, found))
        filled.update(tg for tg, _ in found)
    for disk_name, t in (original or {}).items():
        tg = keys.original_decoder_name(disk_name)
        if tg is None:
            continue  # only the original decoder is taken from a SAM 2.0 checkpoint
        if tg not in expected:
            unexpected.append(f"{t.file.name}:{disk_name}")
        elif tuple(expected[tg]) != t.shape:
            mismatched.append(f"{t.file.name}:{disk_name} {list(t.shape)} vs {tg} {list(expected[tg])}")
        else:
            plan.append((t, [(tg, [(0, t.rows, 0)])]))
            filled.add(tg)
    missing = sorted(set(expected) - filled - optional)
    if missing or unexpected or mismatched:
        raise StrictLoadError(missing, sorted(unexpected), mismatched)
    return plan


def layout_of(model: torch.nn.Module, names: set[str]) -> keys.Layout:
    lm = model.language_model.config
    internlm2 = None
    if model.cfg.llm_arch == "InternLM2ForCausalLM":
        internlm2 = (lm.num_attention_heads, lm.num_key_value_heads, lm.head_dim)
    return keys.Layout(sa2va_i=keys.is_sa2va_i(names), internlm2=internlm2)


@torch.no_grad()
def load_weights(model: torch.nn.Module, directory: Path, name: str, original_sam2: Path | None = None,
                 placement: materialise.Placement | None = None, single_decoder: bool = False) -> dict:
    """Fill every parameter of ``model`` (a ``Sa2VAModel``) from the checkpoint.

    A model built with empty (meta) parameters gets each tensor allocated where
    ``placement`` says (default: cpu, float32) just before it is read; an eagerly
    built one is overwritten in place. Every tensor is checked against the model
    (names, shapes) before any memory is allocated. Returns a small report: the
    number of tensors read, whether the file is a Sa2VA-i checkpoint (both
    decoders), where the original decoder came from, and the bytes on disk.
    ``single_decoder``: the checkpoint's ``sam_mask_decoder`` is SAM2's only
    decoder (SaSaSa2VA: one re-finetuned decoder prompts and tracks); it fills
    ``sam2.sam_mask_decoder`` (the Sa2VA-i renames) and no original decoder is looked for.
    """
    disk = read_tensor_names(tensor_files(directory, name), name)
    layout = layout_of(model, set(disk))
    if single_decoder:
        layout = dataclasses.replace(layout, sa2va_i=True)
    original = None
    if not layout.sa2va_i:
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
    plan = _plan(expected, disk, layout, original, optional)

    if placement is not None or materialise.meta_tensors(model):
        materialise.allocate(model, placement or (lambda _: (torch.device("cpu"), torch.float32)))
    params = model.state_dict(keep_vars=True)
    stream.read_all([(t, params[target].data, pieces) for t, found in plan for target, pieces in found])
    left = materialise.meta_tensors(model)
    if left:
        raise CheckpointError(f"{name}: tensors left without weights: {', '.join(left[:5])}")
    return {"tensors": len(disk), "sa2va_i": layout.sa2va_i,
            "original_decoder": "none (single decoder)" if single_decoder else "checkpoint" if layout.sa2va_i
            else str(original_sam2),
            "bytes_on_disk": sum(f.stat().st_size for f in {t.file for t in disk.values()})}
