"""The launcher environment, completion markers and rank 0's wait: a failed, vanished or stalled rank ends the
wait with a message naming the rank, its expression and why (no collective involved, so nothing hangs)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from test_eval_datasets import SYNTHETIC_EXPRESSIONS, write_synthetic

from sa2va_i_ros.cli import evaluate
from sa2va_i_ros.offline.evaluation.distributed import Dist, DistError, Markers
from sa2va_i_ros.offline.evaluation.monitor import Monitor
from sa2va_i_ros.offline.evaluation.settings import EvalSettings
from sa2va_i_ros.offline.evaluation.store import Merged, RunFolder
from sa2va_i_ros.offline.evaluation.worker import Cell


def test_launcher_environment():
    assert Dist.from_env({}) == Dist()
    d = Dist.from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (d.rank, d.world_size, d.local_rank, d.launched, d.is_main) == (3, 4, 1, True, False)
    assert d.device_for("cuda") == "cuda:1" and d.device_for("cpu") == "cpu" and d.device_for("cuda:0") == "cuda:0"
    assert Dist().device_for("cuda") == "cuda"  # not launched: as asked
    for env in ({"RANK": "4", "WORLD_SIZE": "4"}, {"RANK": "x", "WORLD_SIZE": "2"}, {"WORLD_SIZE": "2"}):
        with pytest.raises(DistError):
            Dist.from_env(env)
    one = Dist()
    one.init("gloo", 1.0, "cpu")  # one rank: no process group, collectives are identities
    assert one.backend is None and one.broadcast({"a": 1}) == {"a": 1} and one.all_gather(5) == [5]


# Two ranks of a real gloo group on the loopback: rank 1 joins the group, then hangs (never enters the
# collective) until rank 0 has given up; rank 0's all_gather must end with DistError after --dist-timeout.
HUNG_RANK = """
import sys, time
from pathlib import Path
from sa2va_i_ros.offline.evaluation.distributed import Dist, DistError
dist = Dist.from_env()
dist.init("gloo", float(sys.argv[1]), "cpu")
release = Path(sys.argv[2])
if dist.rank == 1:
    while not release.exists():
        time.sleep(0.05)
    sys.exit(0)
try:
    dist.all_gather("ready")
except DistError as exc:
    print(exc, file=sys.stderr)
    sys.exit(3)
finally:
    release.touch()
    dist.close()  # as sa2va-i-eval's main does: without it gloo's send, still pending, aborted the exit (-6) 3 in 6
"""


@pytest.mark.slow
def test_a_collective_with_a_hung_rank_ends_after_the_timeout(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    release = tmp_path / "release"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", GLOO_SOCKET_IFNAME="lo",
               OMP_NUM_THREADS="1")
    ranks = [subprocess.Popen([sys.executable, "-c", HUNG_RANK, "2", str(release)], env={**env, "RANK": str(r),
                              "LOCAL_RANK": str(r)}, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    try:
        # a guard against hanging the suite, not a timing assertion: without the timeout rank 0 waits 30 min
        err0 = ranks[0].communicate(timeout=240)[1]
        err1 = ranks[1].communicate(timeout=60)[1]
    finally:
        for rank in ranks:
            rank.kill()
    assert ranks[0].returncode == 3, err0[-2000:]
    assert "rank 0: a start-up collective failed" in err0 and "another rank probably stopped" in err0
    assert ranks[1].returncode == 0, err1[-2000:]


def monitor_for(tmp_path, world_size, run_id="r1"):
    markers = Markers(tmp_path / "parts", run_id)
    markers.folder.mkdir(parents=True, exist_ok=True)
    cell = Cell(EvalSettings(), RunFolder(tmp_path), {}, "run")
    changes = []
    monitor = Monitor([cell], world_size, markers, [Merged()], total=4, done_before=0,
                      on_change=lambda ci, view: changes.append(sorted(view)), show_bar=False, desc="x")
    return markers, monitor, cell, changes


def test_wait_reports_a_failed_rank_with_its_expression(tmp_path):
    markers, monitor, cell, changes = monitor_for(tmp_path, 3)
    cell.folder.part_path(2).write_text(json.dumps({"video": "v", "eid": "0", "J": 1.0}) + "\n")
    markers.write_done(1, ok=True, evaluated=2)
    markers.write_done(2, ok=False, key="v/1", text="the bowl", error="RuntimeError: CUDA out of memory")
    Markers(markers.folder, "old-run").write_done(0, ok=True)  # an earlier run's marker is not this run's
    done, problems = monitor.wait([1, 2], stall_timeout=30, interval=0.01)
    assert sorted(done) == [1, 2]
    assert problems == ["rank 2 failed on v/1 'the bowl': RuntimeError: CUDA out of memory"]
    assert changes == [["v/0"]] and monitor.evaluated == [1]
    assert markers.done(0) is None


def test_wait_notices_a_rank_whose_process_is_gone(tmp_path):
    markers, monitor, _, _ = monitor_for(tmp_path, 2)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    markers.write_status(1, key="v/3", text="the cup")
    status = json.loads(markers.status_path(1).read_text())
    status["pid"] = child.pid  # this rank's process has exited without a completion marker
    markers.status_path(1).write_text(json.dumps(status))
    _, problems = monitor.wait([1], stall_timeout=3600, interval=0.01)
    # the dead process is seen as such, not as a rank that made no progress for the stall timeout
    assert len(problems) == 1 and problems[0].startswith("rank 1 stopped without finishing (its process is gone)")
    assert "v/3 'the cup'" in problems[0]


def test_wait_gives_up_on_a_stalled_rank(tmp_path):
    markers, monitor, _, _ = monitor_for(tmp_path, 2)
    markers.write_status(1, key="v/2", text="the can")  # this (live) process: a hung rank
    _, problems = monitor.wait([1], stall_timeout=0.2, interval=0.01)
    assert len(problems) == 1
    assert problems[0].startswith("rank 1 made no progress for 0.2 s (last on v/2 'the can'")


class Exploding:
    def segment(self, frames, query, **settings):
        if query == SYNTHETIC_EXPRESSIONS["1"]["exp"]:
            raise RuntimeError("device lost")
        return [np.zeros(f.shape[:2], bool) for f in frames]


class Fine(Exploding):
    def segment(self, frames, query, **settings):
        return [np.zeros(f.shape[:2], bool) for f in frames]


def test_an_unexpected_error_names_the_expression_and_keeps_what_is_done(tmp_path, monkeypatch, capsys):
    root = tmp_path / "data"
    write_synthetic(root)
    monkeypatch.setattr(evaluate, "load_segmenter", lambda *a, **k: Exploding())
    out = tmp_path / "out"
    args = ["--dataset", "synthetic", "--root", str(root), "--model", "m", "--out", str(out), "--no-report"]
    assert evaluate.main(args) == 1
    text = SYNTHETIC_EXPRESSIONS["1"]["exp"]
    assert f"sa2va-i-eval: failed on tabletop/1 {text!r}: RuntimeError: device lost" in capsys.readouterr().err
    assert [json.loads(line)["eid"] for line in (out / "results.jsonl").read_text().splitlines()] == ["0"]
    marker = json.loads((out / "parts" / "rank-0.done.json").read_text())
    assert (marker["ok"], marker["key"]) == (False, "tabletop/1")
    monkeypatch.setattr(evaluate, "load_segmenter", lambda *a, **k: Fine())
    assert evaluate.main([*args, "--resume"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["run"]["evaluated"] == 2 and summary["run"]["reused"] == 1


def test_fault_hook_is_off_unless_set():
    from sa2va_i_ros.offline.evaluation.worker import parse_fault

    assert parse_fault(None) is None and parse_fault("rank=1,after=2") == (1, 2, False)
    assert parse_fault("rank=0,after=0,raise=1") == (0, 0, True)
    with pytest.raises(ValueError, match="rank=1,after=2"):
        parse_fault("rank=1")
    assert "SA2VA_I_EVAL_FAULT" not in os.environ
