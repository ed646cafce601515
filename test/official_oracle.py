"""The official Sa2VA-i fixtures: how their checkpoint is rebuilt, and how they are read.

The fixtures in test/fixtures/official_sa2va_i/ were produced by running the
OFFICIAL Sa2VA-i Hugging Face code (kumuji/Sa2VA-i) on CPU in float32 on a
checkpoint written by ``sa2va-i-tiny-checkpoint --answer-rig --hiera-l``
(README.md there says exactly how). Tests rebuild the same checkpoint with the
same seed, check that its tensors are byte-identical to the ones the official
code ran on (``DIGEST``), and compare the product's outputs with the official ones.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "official_sa2va_i"
SEED = 16


def checkpoint_digest(directory: Path) -> str:
    """sha256 over every tensor (name, dtype, shape, raw bytes) and the tokenizer files, in name order."""
    from safetensors import safe_open

    h = hashlib.sha256()
    tensors = {}
    for shard in sorted(directory.glob("*.safetensors")):
        with safe_open(str(shard), "pt") as f:
            for name in f.keys():  # noqa: SIM118
                tensors[name] = (shard, name)
    for name in sorted(tensors):
        shard, _ = tensors[name]
        with safe_open(str(shard), "pt") as f:
            t = f.get_tensor(name)
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.contiguous().view(-1).view(dtype=__import__("torch").uint8).numpy().tobytes())
    for fname in ("vocab.json", "merges.txt", "added_tokens.json", "config.json"):
        h.update((directory / fname).read_bytes())
    return h.hexdigest()


def write_checkpoint(out: Path) -> Path:
    """The checkpoint the official code ran on (seeded answer rig, real SAM 2.0 Hiera-L)."""
    from sa2va_i_ros.model.sam2_model import Sam2Spec
    from sa2va_i_ros.testing.answer_rig import write_answer_rig

    return write_answer_rig(out, seed=SEED, spec=Sam2Spec())


def recorded_digest() -> str:
    return json.loads((FIXTURES / "checkpoint.json").read_text())["digest"]


def frames(count: int) -> list[np.ndarray]:
    with np.load(FIXTURES / "frames.npz") as f:
        return list(f["frames"][:count])


def case(name: str) -> tuple[dict, dict[str, np.ndarray]]:
    """(the recorded scalars and ids, the recorded arrays) of one case."""
    meta = json.loads((FIXTURES / "cases.json").read_text())[name]
    with np.load(FIXTURES / f"{name}.npz") as f:
        arrays = {k: f[k] for k in f.files}
    return meta, arrays
