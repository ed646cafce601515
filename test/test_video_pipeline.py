"""Offline video pipeline and the sa2va-i-video / sa2va-i-tiny-checkpoint CLIs."""

import json

import numpy as np
import pytest
from PIL import Image

from sa2va_i_ros.cli import tiny_checkpoint, video
from sa2va_i_ros.offline.media import read_frames, write_video
from sa2va_i_ros.offline.pipeline import VideoPipeline
from sa2va_i_ros.testing.tiny_sa2va import write_tiny_checkpoint
from sa2va_i_ros.tracking import Grounding, StreamingTracker

QUERY = "the cup left of the bowl"


@pytest.fixture(scope="module")
def pipeline(engine):
    return VideoPipeline(engine)


def test_every_frame_gets_a_mask_equal_to_grounding_plus_propagation(pipeline, engine, frames):
    result = pipeline.run(frames, QUERY)
    assert len(result.masks) == len(frames) == len(result.scores)
    assert result.sampled_indices == [0, 2, 4, 6, 9]
    assert {"language", "decode", "propagate", "total"} <= set(result.timings_ms)
    # the same two steps by hand: keyframe masks, then the tracker from scratch
    g = engine.ground(frames, QUERY)
    assert result.answer == g.answer and result.sampled_indices == g.sampled_indices
    tracker = StreamingTracker(engine.model.sam2)
    added = tracker.add_object(Grounding(frames, list(range(10)), g.sampled_indices, list(g.masks[0])))
    for t, frame_result in enumerate(added.frames):
        np.testing.assert_array_equal(result.masks[t], frame_result.objects[added.obj_id].mask)


def test_prompt_frames_first_seeds_sam2_with_one_mask(pipeline, frames):
    every = pipeline.run(frames, QUERY)
    first = pipeline.run(frames, QUERY, prompt_frames="first")
    np.testing.assert_array_equal(every.masks[0], first.masks[0])  # frame 0 is the prompt in both
    assert any(not np.array_equal(a, b) for a, b in zip(every.masks[1:], first.masks[1:], strict=True))


def test_no_seg_gives_empty_masks_and_the_reason(tmp_path, frames):
    pipe = VideoPipeline.load(str(write_tiny_checkpoint(tmp_path / "no_seg", answer="Sure.")))
    result = pipe.run(frames, QUERY)
    assert not any(m.any() for m in result.masks) and "without a [SEG]" in result.reason


def test_video_cli_on_a_frame_folder_and_an_mp4(tiny_checkpoint, frames, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{i:05d}.png")
    mp4 = tmp_path / "clip.mp4"
    write_video(mp4, frames, fps=10)
    assert len(read_frames(mp4)[0]) == len(frames)
    for source in (folder, mp4):
        out = tmp_path / f"out_{source.name}"
        code = video.main(["--model", str(tiny_checkpoint), "--input", str(source), "--query", QUERY,
                           "--query", "the bowl", "--out", str(out)])
        assert code == 0
        report = json.loads((out / "result.json").read_text())
        assert report["frames"] == 10 and [q["query"] for q in report["queries"]] == [QUERY, "the bowl"]
        first = out / report["queries"][0]["masks"].split("/")[-1]
        assert len(list(first.glob("*.png"))) == 10 and (first / "overlay.mp4").stat().st_size > 0
        assert report["queries"][0]["sampled_indices"] == [0, 2, 4, 6, 9]


def test_video_cli_reports_bad_input(tiny_checkpoint, tmp_path, capsys):
    assert video.main(["--model", str(tiny_checkpoint), "--input", str(tmp_path / "none"), "--query", "x",
                       "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_tiny_checkpoint_cli(tmp_path, capsys):
    assert tiny_checkpoint.main([str(tmp_path / "ckpt")]) == 0
    assert "random weights" in capsys.readouterr().out
    assert (tmp_path / "ckpt" / "model.safetensors.index.json").is_file()


def test_gpu_benchmark_code_path_runs_on_cpu_with_the_tiny_model():
    """bench/bench_gpu.py only measures on a GPU machine; its code path is exercised here on CPU."""
    from bench import bench_gpu

    out = bench_gpu.run(device="cpu", dtypes=("float32",), real=False, frames=3)
    assert out["gpu.float32.grounding_ms_5_frames"] > 0 and out["gpu.float32.propagation_fps"] > 0
    assert out["gpu.tracker.t.float32.fps"] > 0  # bench_gpu_tracker's code path, tiny Hiera-T


def test_every_seg_of_the_answer_gets_its_own_propagated_masks(rig_engine, frames):
    """The answer rig says "Sure, [SEG] and [SEG]." for "the cup and the bowl": two tracks, each propagated
    alone from its own keyframe masks (Sa2VA-i runs a fresh SAM2 state per [SEG]); masks is the first's."""
    from sa2va_i_ros.testing.answer_rig import QUERIES

    result = VideoPipeline(rig_engine).run(frames, QUERIES["two_seg"])
    assert result.answer == "Sure, [SEG] and [SEG]." and len(result.seg_masks) == 2
    assert result.masks is result.seg_masks[0] and result.scores is result.seg_scores[0]
    g = rig_engine.ground(frames, QUERIES["two_seg"])
    for k in range(2):
        tracker = StreamingTracker(rig_engine.model.sam2)
        added = tracker.add_object(Grounding(frames, list(range(10)), g.sampled_indices, list(g.masks[k])))
        for t, frame_result in enumerate(added.frames):
            np.testing.assert_array_equal(result.seg_masks[k][t], frame_result.objects[added.obj_id].mask)
    assert any(not np.array_equal(a, b) for a, b in zip(*result.seg_masks, strict=True))
    one = VideoPipeline(rig_engine).run(frames, QUERIES["one_seg"])
    assert len(one.seg_masks) == 1
