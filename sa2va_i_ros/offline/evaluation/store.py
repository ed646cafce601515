"""An evaluation's output folder: per-rank result logs, their merge, and what ``--resume`` keeps.

    OUT/parts/rank-<r>.jsonl   one line per expression as rank r finishes it (the live log;
                               appended with one write, flushed and fsynced, by one process only)
    OUT/results.jsonl          the merged results: one line per expression, in dataset order

A record is keyed by "video/eid". Merging reads results.jsonl and every part,
drops lines cut short by a kill, and keeps per key the last successful record
(else the last failed one: a failed expression is evaluated again by a resumed
run). Two *different* successful records of one key mean an expression was
scored twice; the merge counts them (``scored_twice``) instead of hiding it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PART_RE = re.compile(r"rank-(\d+)\.jsonl$")


def key_of(record: dict) -> str:
    return f"{record['video']}/{record['eid']}"


def parse_line(line: str) -> dict | None:
    """The record on one line, or None for a line cut short or otherwise unreadable."""
    try:
        record = json.loads(line)
        key_of(record)
    except (json.JSONDecodeError, KeyError, TypeError):
        return None
    return record if isinstance(record, dict) else None


def read_jsonl(path: Path) -> tuple[list[dict], int]:
    """(records, number of unreadable lines) of a results file; a missing file has none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [], 0
    records, dropped = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        record = parse_line(line)
        if record is None:
            dropped += 1
        else:
            records.append(record)
    return records, dropped


def append_record(handle, record: dict) -> None:
    """One whole line per write, on disk before the next expression starts."""
    handle.write(json.dumps(record) + "\n")
    handle.flush()
    os.fsync(handle.fileno())


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class Merged:
    records: dict[str, dict] = field(default_factory=dict)  # key -> kept record
    dropped: int = 0  # unreadable lines
    scored_twice: list[str] = field(default_factory=list)  # keys with two different successful records
    _successes: dict[str, dict] = field(default_factory=dict, repr=False)

    def add(self, record: dict) -> None:
        key = key_of(record)
        if "error" not in record:
            before = self._successes.get(key)
            if before is not None and before != record and key not in self.scored_twice:
                self.scored_twice.append(key)
            self._successes[key] = record
            self.records[key] = record
        elif key not in self._successes:
            self.records[key] = record

    def add_all(self, records: Iterable[dict]) -> None:
        for record in records:
            self.add(record)


class RunFolder:
    """The output folder of one evaluation setting."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.results_path = self.path / "results.jsonl"
        self.parts_dir = self.path / "parts"

    def part_path(self, rank: int) -> Path:
        return self.parts_dir / f"rank-{rank}.jsonl"

    def part_files(self) -> list[Path]:
        if not self.parts_dir.is_dir():
            return []
        found = [p for p in self.parts_dir.iterdir() if PART_RE.search(p.name)]
        return sorted(found, key=lambda p: int(PART_RE.search(p.name).group(1)))

    def has_results(self) -> bool:
        files = [self.results_path, *self.part_files()]
        return any(p.is_file() and p.stat().st_size for p in files)

    def read_all(self) -> Merged:
        """results.jsonl then every part, merged."""
        merged = Merged()
        for path in (self.results_path, *self.part_files()):
            records, dropped = read_jsonl(path)
            merged.dropped += dropped
            merged.add_all(records)
        return merged

    def consolidate(self, order: Sequence[str], remove_parts: bool) -> Merged:
        """Merge everything into results.jsonl (dataset order first, then keys the dataset no longer
        lists), replaced atomically; then, if asked, delete the parts it now holds."""
        parts = self.part_files()
        merged = self.read_all()
        self.path.mkdir(parents=True, exist_ok=True)
        known = [k for k in order if k in merged.records]
        extra = [k for k in merged.records if k not in set(order)]
        write_atomic(self.results_path, "".join(json.dumps(merged.records[k]) + "\n" for k in (*known, *extra)))
        if remove_parts:
            for path in parts:
                path.unlink(missing_ok=True)
            if self.parts_dir.is_dir() and not any(self.parts_dir.iterdir()):
                self.parts_dir.rmdir()
        return merged


class PartTail:
    """Reads the complete lines appended to a part file since the last call (rank 0's monitor)."""

    def __init__(self, path: Path):
        self.path, self.offset = path, 0

    def read_new(self) -> list[dict]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next call
        self.offset += end
        records = []
        for line in data[:end].decode("utf-8", errors="replace").splitlines():
            record = parse_line(line) if line.strip() else None
            if record is not None:
                records.append(record)
        return records
