"""Sharding by frame count, the settings registry and grid syntax, and the merge of per-rank result logs."""

from __future__ import annotations

import itertools
import json

import pytest

from sa2va_i_ros.offline.evaluation.settings import EvalSettings, SettingsError, expand_grid, knobs, parse_grid
from sa2va_i_ros.offline.evaluation.sharding import shard
from sa2va_i_ros.offline.evaluation.store import PartTail, RunFolder, read_jsonl


# -- sharding --------------------------------------------------------------------------------------
def loads(costs, parts):
    return [sum(costs[i] for i in p) for p in parts]


def test_shard_is_longest_processing_time_first():
    # Worked by hand: 10 -> r0, 9 -> r1, 8 -> r1 (9 < 10), then each 1 -> r0 (10, 11, 12 < 17).
    assert shard([10, 9, 8, 1, 1, 1], 2) == [[0, 3, 4, 5], [1, 2]]
    # Ties in cost go in list order; ties in load to the lower rank.
    assert shard([5, 5, 5, 5], 2) == [[0, 2], [1, 3]]
    assert shard([3, 3], 3) == [[0], [1], []]
    assert shard([], 2) == [[], []]


def test_shard_balances_frames_not_counts():
    # One long video and three short ones: an equal count split would give one rank 101 frames.
    assert loads([100, 1, 1, 1], shard([100, 1, 1, 1], 2)) == [100, 3]


@pytest.mark.parametrize("world", [2, 3])
def test_shard_is_a_partition_within_four_thirds_of_the_optimum(world):
    import numpy as np

    rng = np.random.default_rng(world)
    for _ in range(20):
        costs = rng.integers(1, 60, rng.integers(1, 9)).tolist()
        parts = shard(costs, world)
        assert sorted(i for p in parts for i in p) == list(range(len(costs)))
        assert all(p == sorted(p) for p in parts)
        best = min(max(loads(costs, [[i for i, r in enumerate(assign) if r == k] for k in range(world)]))
                   for assign in itertools.product(range(world), repeat=len(costs)))
        assert max(loads(costs, parts)) <= 4 / 3 * best
        assert shard(costs, world) == parts  # deterministic


def test_shard_rejects_bad_input():
    with pytest.raises(ValueError):
        shard([1], 0)
    with pytest.raises(ValueError):
        shard([-1], 2)


# -- settings and grid syntax ----------------------------------------------------------------------
def test_registry_lists_the_papers_settings_with_their_defaults():
    assert list(knobs()) == ["num_frames", "sampling", "prompt_frames", "mode", "tracker_model", "tracker_weights",
                             "tracker_backend", "tracker_onnx_dir"]
    s = EvalSettings()
    assert (s.num_frames, s.sampling, s.prompt_frames) == (5, "uniform", "all")
    assert s.call_kwargs() == {"num_frames": 5, "sampling": "uniform", "prompt_frames": "all"}
    assert s.load_kwargs() == {} and s.load_key() == ()


def test_grid_parsing_and_expansion_order():
    axes = parse_grid(["num_frames=5,8", "sampling=uniform,first", "prompt-frames=all,first"])
    assert axes == [("num_frames", [5, 8]), ("sampling", ["uniform", "first"]), ("prompt_frames", ["all", "first"])]
    cells = expand_grid(EvalSettings(num_frames=3), axes[1:])
    assert [(c.num_frames, c.sampling, c.prompt_frames) for c in cells] == [
        (3, "uniform", "all"), (3, "uniform", "first"), (3, "first", "all"), (3, "first", "first")]
    assert cells[1].slug(["sampling", "prompt_frames"]) == "sampling=uniform,prompt_frames=first"
    assert cells[1].shown("prompt_frames") == "first (1)" and cells[0].shown("prompt_frames") == "all (3)"


@pytest.mark.parametrize(("axes", "message"), [
    (["frames=5"], "unknown setting 'frames'"),
    (["num_frames=0"], "at least 1"),
    (["num_frames=five"], "expected an integer"),
    (["sampling=random"], "must be one of uniform, first"),
    (["num_frames"], "expected NAME=V1,V2"),
    (["num_frames=5,5"], "repeats a value"),
    (["num_frames=5", "num_frames=8"], "given twice"),
])
def test_grid_errors_name_the_problem(axes, message):
    with pytest.raises(SettingsError, match=message):
        parse_grid(axes)


def test_frames_seen_follows_the_samplers():
    assert EvalSettings(num_frames=5).frames_seen(3) == 3  # linspace(0, 2, 5) -> 0,0,1,1,2
    assert EvalSettings(num_frames=5).frames_seen(40) == 5
    assert EvalSettings(num_frames=8, sampling="first").frames_seen(6) == 6


# -- result logs and their merge -------------------------------------------------------------------
def rec(eid, **kw):
    return {"video": "v", "eid": eid, "exp": f"e{eid}", "frames": 3, **kw}


def write_lines(path, records, tail=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)


def test_merge_keeps_successes_drops_cut_lines_and_counts_double_scoring(tmp_path):
    folder = RunFolder(tmp_path)
    write_lines(folder.results_path, [rec("0", J=1.0), rec("1", error="boom")])
    write_lines(folder.part_path(0), [rec("1", J=0.5), rec("2", error="again")], tail='{"video": "v", "ei')
    write_lines(folder.part_path(1), [rec("0", J=1.0), rec("1", error="late"), rec("3", J=0.25)])
    merged = folder.read_all()
    assert merged.dropped == 1
    assert {k: r.get("J", r.get("error")) for k, r in merged.records.items()} == {
        "v/0": 1.0, "v/1": 0.5, "v/2": "again", "v/3": 0.25}
    assert merged.scored_twice == []  # v/0 twice but identical: one scoring copied, not two
    write_lines(folder.part_path(2), [rec("3", J=0.75)])
    assert folder.read_all().scored_twice == ["v/3"]


def test_consolidate_writes_dataset_order_and_removes_parts(tmp_path):
    folder = RunFolder(tmp_path)
    write_lines(folder.part_path(1), [rec("2", J=0.2), rec("9", J=0.9)])
    write_lines(folder.part_path(0), [rec("1", J=0.1)])
    folder.consolidate(["v/0", "v/1", "v/2"], remove_parts=False)
    records, _ = read_jsonl(folder.results_path)
    assert [r["eid"] for r in records] == ["1", "2", "9"]  # dataset order, then what it no longer lists
    assert len(folder.part_files()) == 2
    folder.consolidate(["v/0", "v/1", "v/2"], remove_parts=True)
    assert folder.part_files() == [] and [r["eid"] for r in read_jsonl(folder.results_path)[0]] == ["1", "2", "9"]


def test_part_tail_reads_complete_lines_only(tmp_path):
    path = tmp_path / "rank-0.jsonl"
    tail = PartTail(path)
    assert tail.read_new() == []
    line = json.dumps(rec("0", J=1.0))
    path.write_text(line[:10])
    assert tail.read_new() == []
    path.write_text(line + "\n" + json.dumps(rec("1", J=0.0)))
    assert [r["eid"] for r in tail.read_new()] == ["0"]
    path.write_text(line + "\n" + json.dumps(rec("1", J=0.0)) + "\n")
    assert [r["eid"] for r in tail.read_new()] == ["1"]
