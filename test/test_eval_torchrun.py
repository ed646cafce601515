"""``sa2va-i-eval`` under torchrun: 2 ranks (gloo, CPU) on the tiny checkpoint equal one process, and a run
whose rank 1 is killed mid-run is finished by a resume with 3 ranks, nothing scored twice.

torch's own launcher (``python -m torch.distributed.run``, i.e. ``torchrun``) starts the ranks with a static
rendezvous on 127.0.0.1 and a free port; gloo is bound to the loopback interface: nothing leaves the machine.
Every process runs torch on one thread (torchrun's default for several ranks), so that the numbers cannot
differ by the split of a reduction over threads.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import pytest

from sa2va_i_ros.testing.synthetic.benchmark import write_benchmark

pytestmark = pytest.mark.slow

LENGTHS = (3, 6, 4)  # frames of the three videos: unequal work for the ranks


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench") / "data"
    write_benchmark(root, LENGTHS, size=(48, 32))
    return root


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update({"MASTER_ADDR": "127.0.0.1", "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1", **extra})
    return env


def eval_args(data, model, out, *extra) -> list[str]:
    return ["--dataset", "synthetic", "--root", str(data), "--model", str(model), "--out", str(out),
            "--num-frames", "2", "--no-report", *extra]


def run_eval(nproc: int | None, args: list[str], **env) -> subprocess.CompletedProcess:
    """One process (``nproc`` None) or torchrun with ``nproc`` ranks."""
    module = ["-m", "sa2va_i_ros.cli.evaluate"]
    if nproc is None:
        cmd = [sys.executable, *module, *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(nproc),
               "--master-addr", "127.0.0.1", "--master-port", str(free_port()), *module, *args]
    return subprocess.run(cmd, env=local_env(**env), capture_output=True, text=True, timeout=600)


def results(out) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def scores(out) -> list[tuple]:
    return [(r["video"], r["eid"], r["frames"], r["J"], r["F"], r["J&F"]) for r in results(out)]


def summary(out) -> dict:
    return json.loads((out / "summary.json").read_text())


def assert_progress_bars(stderr: str, totals: dict[str, int]) -> None:
    """Each bar (tqdm, on stderr) showed an estimated time left part-way and ended full."""
    lines = re.split(r"[\r\n]+", stderr)
    for label, total in totals.items():
        states = [m.groups() for line in lines
                  if (m := re.search(rf"{label}: +\d+%\|[^|]*\| (\d+)/{total} \[(\d+:\d+)<([0-9:?]+)", line))]
        assert states, f"no progress bar {label!r} in:\n{stderr[-3000:]}"
        assert any(0 < int(n) < total and left != "?" for n, _, left in states), (label, states)
        assert int(states[-1][0]) == total, (label, states)


def test_two_ranks_equal_one_process_and_a_killed_rank_is_resumed(data, tiny_checkpoint, tmp_path):
    total = 5 * len(LENGTHS)
    one = run_eval(None, eval_args(data, tiny_checkpoint, tmp_path / "one"))
    assert one.returncode == 0, one.stderr[-3000:]
    reference = scores(tmp_path / "one")
    assert_progress_bars(one.stderr, {"synthetic": total})  # one process: its bar is named after the dataset
    assert len(reference) == total and [r[2] for r in reference] == [n for n in LENGTHS for _ in range(5)]

    # 2 ranks: the merged results are the one-process results, number for number, in the same order
    two = run_eval(2, eval_args(data, tiny_checkpoint, tmp_path / "two"))
    assert two.returncode == 0, two.stderr[-3000:]
    assert scores(tmp_path / "two") == reference
    s1, s2 = summary(tmp_path / "one"), summary(tmp_path / "two")
    assert (s2["J"], s2["F"], s2["J&F"]) == (s1["J"], s1["F"], s1["J&F"])
    assert s2["run"] == {"ranks": 2, "evaluated": total, "reused": 0, "scored_twice": 0}
    done = [json.loads((tmp_path / "two" / "parts" / f"rank-{r}.done.json").read_text()) for r in (0, 1)]
    assert all(d["ok"] for d in done) and sorted(d["evaluated"] for d in done) == [7, 8]  # frames 34 and 31
    assert not list((tmp_path / "two" / "parts").glob("rank-*.jsonl"))  # merged, then removed
    assert_progress_bars(two.stderr, {"rank 0": done[0]["evaluated"], "rank 1": done[1]["evaluated"],
                                      "all ranks": total})

    # rank 1 killed (SIGKILL) right after logging its first expression: torchrun stops the run
    out = tmp_path / "killed"
    killed = run_eval(2, eval_args(data, tiny_checkpoint, out), SA2VA_I_EVAL_FAULT="rank=1,after=1")
    assert killed.returncode != 0
    part1 = out / "parts" / "rank-1.jsonl"
    assert len(part1.read_text().splitlines()) == 1
    logged = {(r["video"], r["eid"]) for p in [out / "results.jsonl", *out.glob("parts/rank-*.jsonl")]
              if p.exists() for r in map(json.loads, p.read_text().splitlines())}
    assert 1 <= len(logged) < total

    # resumed by 3 ranks (another number): only what is missing is evaluated, split over the 3, and the
    # numbers are the same
    resumed = run_eval(3, eval_args(data, tiny_checkpoint, out, "--resume"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert scores(out) == reference
    assert summary(out)["run"] == {"ranks": 3, "evaluated": total - len(logged), "reused": len(logged),
                                   "scored_twice": 0}
    done = [json.loads((out / "parts" / f"rank-{r}.done.json").read_text()) for r in range(3)]
    assert all(d["ok"] for d in done) and sum(d["evaluated"] for d in done) == total - len(logged)
    assert (summary(out)["J"], summary(out)["F"]) == (s1["J"], s1["F"])


def test_a_failing_rank_names_its_expression_and_the_run_stops(data, tiny_checkpoint, tmp_path):
    """Rank 1 raises on its second expression (as a failing GPU would): it says which expression and why,
    torchrun stops rank 0, which repeats the reason, keeps what is done, and nobody waits for a collective."""
    out = tmp_path / "failing"
    failed = run_eval(2, eval_args(data, tiny_checkpoint, out), SA2VA_I_EVAL_FAULT="rank=1,after=1,raise=1")
    assert failed.returncode != 0
    marker = json.loads((out / "parts" / "rank-1.done.json").read_text())
    assert marker["ok"] is False and marker["error"] == "InjectedFault: SA2VA_I_EVAL_FAULT: injected fault"
    status = json.loads((out / "parts" / "rank-1.status.json").read_text())
    assert status["key"] == marker["key"] and status["done"] == 1
    reason = f"rank 1 failed on {marker['key']} {marker['text']!r}: InjectedFault: SA2VA_I_EVAL_FAULT: injected fault"
    assert f"sa2va-i-eval[rank 1]: {reason}" in failed.stderr
    assert f"sa2va-i-eval[rank 0]: {reason}" in failed.stderr
    kept = [json.loads(line) for p in out.glob("parts/rank-*.jsonl") for line in p.read_text().splitlines()]
    assert marker["key"] not in {f"{r['video']}/{r['eid']}" for r in kept}
