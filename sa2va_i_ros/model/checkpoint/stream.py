"""Read safetensors tensors straight into their final tensors, a bounded window at a time.

A safetensors file is an 8-byte little-endian header length, a JSON header
(name -> dtype, shape, byte range) and the raw little-endian data. Rows of a
tensor are read through a memory map of one window of the file (at most
``CHUNK_BYTES``): the destination is filled from the mapped page-cache pages
in one ``copy_`` that also converts the dtype (or uploads to a GPU), with no
staging buffer and no second copy in host memory. The window is unmapped
before the next one is mapped, so neither a whole shard nor a whole tensor is
ever mapped beside the model: the peak is the model plus one window per
reader thread. ``read_all`` fills the tensors with a few threads (``copy_``
releases the GIL), so that first-touch page faults, dtype casts and reads
overlap on several cores. A row
range can go to another row offset of the destination, which is how fused
``qkv`` / ``wqkv`` tensors are split while they are read.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import struct
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from sa2va_i_ros.errors import CheckpointError

DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}
CHUNK_BYTES = 16 << 20  # largest mapped window: bounds the extra host memory of loading (one per reader thread)
MAX_READERS = 4

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
    rows = dest.reshape(dest.shape[0] if dest.dim() else 1, -1)  # a view: dest is contiguous
    rows_per_chunk = max(1, chunk_bytes // max(row_bytes, 1))
    size = os.fstat(f.fileno()).st_size
    for src, count, dst in pieces:
        for done in range(0, count, rows_per_chunk):
            n = min(rows_per_chunk, count - done)
            start, length = entry.start + (src + done) * row_bytes, n * row_bytes
            if start + length > size:  # never map past the end: reading there would be SIGBUS
                raise CheckpointError(f"{entry.file.name}: {entry.name} is cut short "
                                      f"({max(0, size - start)} of {length} bytes in the file)")
            if length:
                _copy_window(f, start, length, entry.dtype, rows[dst + done: dst + done + n])


def _copy_window(f, start: int, length: int, dtype: torch.dtype, target: torch.Tensor) -> None:
    """``target`` (n rows) from ``length`` bytes at ``start``, through a memory map of just that window."""
    base = start - start % mmap.ALLOCATIONGRANULARITY
    window = mmap.mmap(f.fileno(), start - base + length, offset=base, access=mmap.ACCESS_READ)
    try:
        if hasattr(mmap, "MADV_WILLNEED"):
            window.madvise(mmap.MADV_WILLNEED)  # one readahead for the window when the file is not cached
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # read-only buffer: it is only read
            raw = torch.frombuffer(window, dtype=torch.uint8, count=length, offset=start - base)
        if (start - base) % dtype.itemsize:
            raw = raw.clone()  # an unaligned tensor (never written by safetensors itself)
        target.copy_(raw.view(dtype).view(target.shape))
        del raw  # the tensor holds the map's buffer: released before the map is closed
    finally:
        with contextlib.suppress(BufferError):  # a failed copy still holds the buffer: unmapped when collected
            window.close()


def open_for_reading(file: Path):
    """The open file whose windows ``copy_rows`` maps; ``posix_fadvise`` tells the kernel the reads are sequential."""
    f = open(file, "rb", buffering=0)  # noqa: SIM115  (closed by the caller's ``with``)
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
    return f


# (where a tensor lies, its destination, which rows go where)
Job = tuple[Entry, torch.Tensor, list[Piece]]


def reader_threads() -> int:
    """Threads that fill tensors: the CPU's threads, at most ``MAX_READERS``."""
    return max(1, min(MAX_READERS, torch.get_num_threads(), os.cpu_count() or 1))


def read_all(jobs: list[Job], threads: int | None = None) -> None:
    """Every job's rows into its destination, in file order, by ``threads`` workers (default ``reader_threads``).

    The first failure is raised once the workers stopped; jobs not started yet are dropped.
    """
    jobs = sorted(jobs, key=lambda job: (str(job[0].file), job[0].start))
    files: dict[Path, object] = {}
    try:
        for entry, _, _ in jobs:
            if entry.file not in files:
                files[entry.file] = open_for_reading(entry.file)

        def one(job: Job) -> None:
            entry, dest, pieces = job
            copy_rows(files[entry.file], entry, dest, pieces)

        workers = threads or reader_threads()
        if workers <= 1:
            for job in jobs:
                one(job)
            return
        pool = ThreadPoolExecutor(workers, thread_name_prefix="sa2va-load")
        try:
            for future in [pool.submit(one, job) for job in jobs]:
                future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        for f in files.values():
            f.close()
