"""SaSaSa2VA as the node's grounding engine: its seed frames' masks against the whole-video pipeline's.

The whole-video pipeline (``SaSaSa2VAPipeline.run``) is pinned against the
official code's outputs (test_sasasa2va_official.py); the node's engine decodes
only the seed frames (``modes.seed_frames``) and must give exactly its masks
there, with the same answer and the same 100 sampled frames. The checkpoint is
the answer rig in SaSaSa2VA's layout answering twelve [SEG]: ten distinct clip
prompts, so a frame's clip and the averaging of its positions matter.
"""

import numpy as np
import pytest
from test_sasasa2va_pipeline import QUERY, video
from test_tracker_helpers import one_torch_thread  # noqa: F401  (autouse: one torch thread on a shared machine)

from sa2va_i_ros.errors import FramesError, QueryError
from sa2va_i_ros.grounding.engine import GroundingOptions
from sa2va_i_ros.grounding.kinds import load_grounding_engine
from sa2va_i_ros.grounding.sasasa2va.pipeline import SaSaSa2VAPipeline
from sa2va_i_ros.grounding.sasasa2va.streaming import SaSaSa2VAEngine
from sa2va_i_ros.testing.answer_rig import QUERIES, write_answer_rig
from sa2va_i_ros.testing.tiny_sasasa2va import to_sasasa2va

MANY = QUERIES["endless_seg"]  # [SEG] until max_new_tokens: 13 tokens give 12 [SEG] states


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    rig = write_answer_rig(tmp_path_factory.mktemp("sasasa2va_rig_streaming"))
    return load_grounding_engine(str(to_sasasa2va(rig, "qwen_chat")))


@pytest.mark.parametrize("t, mode, seeds", [
    (7, "uniform_plus", [6]),  # duplicates averaged
    # W12: frames 0..3 nine times (positions 0..35), 4..11 eight times: positions 90..99 are frames 10, 11
    (12, "wrap_around", [10, 11]),
    (103, "uniform", list(range(92, 103))),
    (103, "wrap_around", list(range(90, 100))),  # the rest (100..102) is propagated: no seed
])
def test_seed_masks_are_the_whole_video_pipelines(engine, t, mode, seeds):
    assert isinstance(engine, SaSaSa2VAEngine) and engine.kind == "sasasa2va"
    frames = video(t)
    g = engine.ground(frames, MANY, GroundingOptions(sasasa2va_mode=mode, max_new_tokens=13))
    ref = SaSaSa2VAPipeline(engine).run(frames, MANY, mode=mode, max_new_tokens=13)
    assert g.answer == ref.answer and g.sampled_indices == ref.sampled_indices and g.seeds == seeds
    assert g.num_objects == 1 and g.masks.shape == (1, len(seeds), *frames[0].shape[:2])
    for k, f in enumerate(seeds):
        np.testing.assert_array_equal(g.masks[0, k], ref.masks[f])
        assert g.scores[k] == pytest.approx(ref.scores[f], abs=1e-6)
    prompts = g.tracker_grounding(frames, range(t), "first")
    assert prompts.sampled_indices == seeds[:1]


def test_q_frame_and_question_marks_are_refused_with_the_reason(engine):
    frames = video(5)
    with pytest.raises(FramesError, match="q_frame needs indices"):
        engine.ground(frames, QUERY, GroundingOptions(sasasa2va_mode="q_frame"))
    with pytest.raises(QueryError, match="'\\?'"):
        engine.check_query("which cup?")
