"""Read safetensors tensors straight into their final tensors, a bounded chunk at a time.

A safetensors file is an 8-byte little-endian header length, a JSON header
(name -> dtype, shape, byte range) and the raw little-endian data. Reading rows
of a tensor with ``readinto`` puts them either directly into the destination's
memory (same dtype, on the CPU) or into one small staging buffer that is then
converted and copied (another dtype, or a GPU). Nothing is memory-mapped, so
neither a whole shard nor a whole tensor ever sits in host memory beside the
model: the peak is the model plus one chunk. A row range can go to another row
offset of the destination, which is how fused ``qkv`` / ``wqkv`` tensors are
split while they are read.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from sa2va_i_ros.errors import CheckpointError

DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}
CHUNK_BYTES = 64 << 20  # largest staging buffer: bounds the extra host memory of loading

# (first source row, number of rows, first destination row), along dim 0
Piece = tuple[int, int, int]


@dataclass(frozen=True)
class Entry:
    """Where one tensor lies in its file."""

    file: Path
    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    start: int  # absolute byte offset in the file
    nbytes: int

    @property
    def rows(self) -> int:
        return self.shape[0] if self.shape else 1

    @property
    def row_bytes(self) -> int:
        return self.nbytes // self.rows if self.rows else 0


def read_header(file: Path, name: str) -> dict[str, Entry]:
    """Every tensor of one file, checked against the file's size (a truncated shard fails here)."""
    try:
        size = file.stat().st_size
        with open(file, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > size - 8 or length > 100 << 20:
                raise ValueError(f"header length {length} does not fit a {size}-byte file")
            header = json.loads(f.read(length))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        entries = {}
        for key, spec in header.items():
            if key == "__metadata__":
                continue
            dtype = DTYPES.get(spec["dtype"])
            if dtype is None:
                raise ValueError(f"{key}: unsupported dtype {spec['dtype']}")
            shape = tuple(int(s) for s in spec["shape"])
            begin, end = (int(x) for x in spec["data_offsets"])
            numel = 1
            for s in shape:
                numel *= s
            if end - begin != numel * dtype.itemsize or begin < 0 or 8 + length + end > size:
                raise ValueError(f"{key}: byte range {begin}..{end} does not hold {list(shape)} {spec['dtype']} "
                                 f"inside a {size}-byte file")
            entries[key] = Entry(file, key, dtype, shape, 8 + length + begin, end - begin)
        return entries
    except (OSError, ValueError, KeyError, TypeError, struct.error, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{name}: {file.name} is not a readable safetensors file ({exc})") from exc


def copy_rows(f, entry: Entry, dest: torch.Tensor, pieces: list[Piece], chunk_bytes: int = CHUNK_BYTES) -> None:
    """Read ``pieces`` of ``entry`` from the open file ``f`` into ``dest`` (any dtype, any device)."""
    if not dest.is_contiguous():
        raise ValueError(f"{entry.name}: the destination tensor must be contiguous")
    row_bytes = entry.row_bytes
    direct = dest.device.type == "cpu" and dest.dtype == entry.dtype
    rows = dest.reshape(dest.shape[0] if dest.dim() else 1, -1)  # a view: dest is contiguous
    rows_per_chunk = max(1, chunk_bytes // max(row_bytes, 1))
    for src, count, dst in pieces:
        for done in range(0, count, rows_per_chunk):
            n = min(rows_per_chunk, count - done)
            target = rows[dst + done: dst + done + n]
            buf = target.view(torch.uint8).reshape(-1) if direct else torch.empty(n * row_bytes, dtype=torch.uint8)
            f.seek(entry.start + (src + done) * row_bytes)
            got = f.readinto(memoryview(buf.numpy()))
            if got != n * row_bytes:
                raise CheckpointError(f"{entry.file.name}: {entry.name} is cut short "
                                      f"({got} of {n * row_bytes} bytes read)")
            if not direct:
                target.copy_(buf.view(entry.dtype).view(n, -1))


def open_for_reading(file: Path):
    """A buffered reader; ``posix_fadvise`` tells the kernel the reads are sequential."""
    f = open(file, "rb", buffering=0)  # noqa: SIM115  (closed by the caller's ``with``)
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
    return f
