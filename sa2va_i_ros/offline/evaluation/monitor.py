"""Rank 0's view of a running evaluation, from the files the ranks write.

It tails every rank's part file (complete lines only), keeps the merged
results of each setting, rewrites its summary as they come, drives the
merged progress bar, and at the end waits for every rank's completion marker:
a marker that reports a failure, a rank whose process is gone (same machine)
or ``stall_timeout`` seconds without any rank making progress end the wait
with a message naming the rank, its expression and why.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from tqdm import tqdm

from sa2va_i_ros.offline.evaluation.distributed import Markers
from sa2va_i_ros.offline.evaluation.store import Merged, PartTail
from sa2va_i_ros.offline.evaluation.worker import Cell


class Monitor:
    def __init__(self, cells: Sequence[Cell], world_size: int, markers: Markers, prior: Sequence[Merged],
                 total: int, done_before: int, on_change: Callable[[int, dict[str, dict]], None],
                 show_bar: bool, desc: str):
        self.cells, self.world_size, self.markers = cells, world_size, markers
        self.views = [dict(m.records) for m in prior]
        self._ok = [{k for k, r in m.records.items() if "error" not in r} for m in prior]
        self.tails = [[PartTail(c.folder.part_path(r)) for r in range(world_size)] for c in cells]
        self.on_change = on_change
        self.evaluated = [0] * len(cells)  # records logged by this run, per setting
        self.last_progress = time.monotonic()
        self.bar = tqdm(total=total, initial=done_before, unit="exp", desc=desc, position=0, disable=not show_bar)

    def poll(self, *_ignored) -> int:
        """Read what the ranks logged since the last call; returns the number of new records."""
        new_total = 0
        for ci, tails in enumerate(self.tails):
            new = [record for tail in tails for record in tail.read_new()]
            for record in new:
                key = f"{record['video']}/{record['eid']}"
                if "error" not in record:
                    self._ok[ci].add(key)
                    self.views[ci][key] = record
                elif key not in self._ok[ci]:
                    self.views[ci][key] = record
            if new:
                new_total += len(new)
                self.evaluated[ci] += len(new)
                self.on_change(ci, self.views[ci])
        if new_total:
            self.last_progress = time.monotonic()
            self.bar.update(new_total)
        return new_total

    def set_score(self, jf: float | None) -> None:
        if jf is not None:
            self.bar.set_postfix({"J&F": f"{100 * jf:.2f}"})

    def wait(self, ranks, stall_timeout: float, interval: float = 0.5) -> tuple[dict[int, dict], list[str]]:
        """Until each of ``ranks`` is done, failed, gone or stalled: (done markers by rank, problems)."""
        done: dict[int, dict] = {}
        problems: list[str] = []
        pending = set(ranks)
        statuses: dict[int, dict | None] = {}
        while True:
            self.poll()
            for rank in sorted(pending):
                marker = self.markers.done(rank)
                status = self.markers.status(rank)
                if status != statuses.get(rank):
                    statuses[rank] = status
                    self.last_progress = time.monotonic()
                if marker is not None:
                    done[rank] = marker
                    pending.discard(rank)
                    if not marker.get("ok", False):
                        problems.append(failure_text(marker))
                elif self.markers.gone(rank):
                    self.poll()
                    pending.discard(rank)
                    problems.append(f"rank {rank} stopped without finishing (its process is gone){_where(status)}")
            if not pending:
                break
            if time.monotonic() - self.last_progress > stall_timeout:
                for rank in sorted(pending):
                    problems.append(f"rank {rank} made no progress for {stall_timeout:g} s"
                                    f"{_where(self.markers.status(rank))}; not waiting for it any longer")
                break
            time.sleep(interval)
        self.poll()
        return done, problems

    def close(self) -> None:
        self.bar.close()


def failure_text(marker: dict) -> str:
    where = f" on {marker['key']} {marker.get('text', '')!r}" if marker.get("key") else ""
    return f"rank {marker.get('rank')} failed{where}: {marker.get('error', 'no reason given')}"


def _where(status: dict | None) -> str:
    if not status or not status.get("key"):
        return ""
    return f" (last on {status['key']} {status.get('text', '')!r}, host {status.get('host')}, pid {status.get('pid')})"
