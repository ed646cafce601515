"""Running ``sa2va-i-eval`` under ``torchrun``: ranks, devices, the few collectives, completion markers.

torchrun (or any launcher that sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR
and MASTER_PORT) starts one process per rank. Collectives are used only at
start-up, all quick and under ``init_process_group(timeout=...)``: every rank
reports that it read the dataset, rank 0 broadcasts the work plan, every rank
confirms it sees the shared output folder. Results never travel through
collectives: each rank appends to its own file and, when done, writes a
completion marker; rank 0 watches those files (progress, summary) and merges
them. So a rank that dies or hangs mid-run cannot block the others in a
collective: rank 0 sees its marker say why, sees its process gone (same
machine), or stops waiting after ``stall_timeout`` seconds without progress.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sa2va_i_ros.offline.evaluation.store import write_atomic

BACKENDS = ("auto", "gloo", "nccl")


class DistError(RuntimeError):
    """The launcher's environment or the process group cannot be used."""


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launched: bool = False  # started by torchrun or another launcher (RANK/WORLD_SIZE set)
    backend: str | None = None  # set once a process group is up
    _device: object = field(default=None, repr=False)  # where object collectives stage their tensors

    @classmethod
    def from_env(cls, env=None) -> Dist:
        env = os.environ if env is None else env
        if "RANK" not in env and "WORLD_SIZE" not in env:
            return cls()
        try:
            rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
            local = int(env.get("LOCAL_RANK", rank))
        except (KeyError, ValueError) as exc:
            raise DistError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers set by the launcher ({exc})") from exc
        if world < 1 or not 0 <= rank < world or local < 0:
            raise DistError(f"inconsistent launcher environment: RANK={rank} WORLD_SIZE={world} LOCAL_RANK={local}")
        return cls(rank=rank, world_size=world, local_rank=local, launched=True)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device_for(self, requested: str) -> str:
        """Under a launcher each rank takes its own GPU: ``cuda`` becomes ``cuda:LOCAL_RANK``."""
        if not self.launched or requested != "cuda":
            return requested
        return f"cuda:{self.local_rank}"

    def init(self, backend: str, timeout_s: float, device: str) -> None:
        """A process group for the start-up collectives (no-op for one rank). ``auto``: nccl on CUDA, else gloo."""
        if self.world_size == 1:
            return
        import torch
        import torch.distributed as tdist

        if backend == "auto":
            backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            if not torch.cuda.is_available():
                raise DistError("backend nccl needs CUDA; use --dist-backend gloo on CPU")
            self._device = torch.device(device)
            torch.cuda.set_device(self._device)
        try:
            tdist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
        except Exception as exc:  # rendezvous and backend errors have no common base class
            raise DistError(f"rank {self.rank}: cannot join the process group ({type(exc).__name__}: {exc})") from exc
        self.backend = backend

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank."""
        if self.backend is None:
            return obj
        import torch.distributed as tdist

        box = [obj]
        self._collective(tdist.broadcast_object_list, box, src=0, device=self._device)
        return box[0]

    def all_gather(self, obj) -> list:
        """Every rank's ``obj``, in rank order."""
        if self.backend is None:
            return [obj]
        import torch.distributed as tdist

        boxes = [None] * self.world_size
        self._collective(tdist.all_gather_object, boxes, obj)
        return boxes

    def _collective(self, fn, *args, **kwargs) -> None:
        try:
            fn(*args, **kwargs)
        except Exception as exc:  # a timeout or a peer that went away
            raise DistError(f"rank {self.rank}: a start-up collective failed ({type(exc).__name__}: {exc}); "
                            "another rank probably stopped, see its messages") from exc

    def close(self) -> None:
        if self.backend is None:
            return
        import torch.distributed as tdist

        with contextlib.suppress(Exception):  # nothing left to do when the group is already broken
            tdist.destroy_process_group()
        self.backend = None


class Markers:
    """Per-rank files in ``OUT/parts/`` for this run: status (what a rank is doing) and done (how it ended)."""

    def __init__(self, folder: Path, run_id: str):
        self.folder, self.run_id = folder, run_id

    def status_path(self, rank: int) -> Path:
        return self.folder / f"rank-{rank}.status.json"

    def done_path(self, rank: int) -> Path:
        return self.folder / f"rank-{rank}.done.json"

    def write_status(self, rank: int, **info) -> None:
        payload = {"run_id": self.run_id, "rank": rank, "host": socket.gethostname(), "pid": os.getpid(),
                   "time": time.time(), **info}
        write_atomic(self.status_path(rank), json.dumps(payload))

    def write_done(self, rank: int, **info) -> None:
        write_atomic(self.done_path(rank), json.dumps({"run_id": self.run_id, "rank": rank, **info}))

    def read(self, path: Path) -> dict | None:
        """The marker if it belongs to this run."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("run_id") == self.run_id else None

    def status(self, rank: int) -> dict | None:
        return self.read(self.status_path(rank))

    def done(self, rank: int) -> dict | None:
        return self.read(self.done_path(rank))

    def gone(self, rank: int) -> bool:
        """The rank ran on this machine and its process no longer exists (it cannot write its marker)."""
        status = self.status(rank)
        if not status or status.get("host") != socket.gethostname():
            return False
        try:
            os.kill(int(status["pid"]), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, OSError, KeyError, ValueError):
            return False
        return False

    def clear(self) -> None:
        """Remove the markers of earlier runs."""
        for path in self.folder.glob("rank-*.status.json"):
            path.unlink(missing_ok=True)
        for path in self.folder.glob("rank-*.done.json"):
            path.unlink(missing_ok=True)
