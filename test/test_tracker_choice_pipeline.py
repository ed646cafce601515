"""A chosen tracker model in the offline pipeline: equal to sam2's offline propagation of that model.

The grounding is the tiny Sa2VA-i checkpoint's (S = 256); the tracker is a tiny SAM 2.1 / 2.0
model (S = 128) loaded from a weights file, so neither the grounding's encoder features nor its
pixels can be reused: the tracker encodes every frame itself. The videos are shorter than 16
frames, where SAM 2.1's pointer encoding depends on the video's length: the pipeline knows it.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_tracker_helpers import EncoderCounter, offline_reference
from tracker_model_helpers import reference_model, tiny_weights

from sa2va_i_ros.offline.pipeline import VideoPipeline
from sa2va_i_ros.tracking import TrackerChoice

QUERY = "the cup left of the bowl"


@pytest.mark.parametrize("name", ["sam2.1_hiera_t", "sam2_hiera_s"])
def test_pipeline_with_a_sam2_tracker_equals_its_offline_propagation(engine, frames, name):
    pipeline = VideoPipeline(engine, tracker=TrackerChoice(name, str(tiny_weights(name))))
    assert pipeline.tracker_sam2 is not engine.model.sam2
    with EncoderCounter(pipeline.tracker_sam2) as tracker_passes, EncoderCounter(engine.model.sam2) as grounding:
        result = pipeline.run(frames, QUERY)
    g = engine.ground(frames, QUERY)
    assert result.sampled_indices == g.sampled_indices == [0, 2, 4, 6, 9]
    # the tracker's own encoder on every frame (its extra pass on the 5 sampled ones), the
    # checkpoint's only on the 5 sampled frames for grounding
    assert tracker_passes.calls == len(frames) and grounding.calls == 5
    ref = offline_reference(reference_model(name), frames, list(zip(g.sampled_indices, g.masks[0], strict=True)))
    assert sorted(ref) == list(range(len(frames)))
    for t, frame_ref in ref.items():
        np.testing.assert_array_equal(result.masks[t], frame_ref.mask, err_msg=f"frame {t}")
    assert any(m.any() for m in result.masks)


def test_checkpoint_tracker_reuses_the_grounding_features(engine, frames):
    pipeline = VideoPipeline(engine)
    assert pipeline.tracker_sam2 is engine.model.sam2
    with EncoderCounter(engine.model.sam2) as passes:
        pipeline.run(frames, QUERY)
    assert passes.calls == 5 + (len(frames) - 5)  # grounding's 5, propagation only the other 5


def test_features_of_another_encoder_are_refused_by_the_tracker(engine, frames):
    """Same sizes as the checkpoint's SAM2 (S = 256, same widths): only the encoder differs."""
    from sa2va_i_ros.testing.tiny_trackers import build_tiny_tracker
    from sa2va_i_ros.tracking import StreamingTracker

    g = engine.ground(frames, QUERY)
    foreign = g.tracker_grounding(frames, range(len(frames)))  # features of the checkpoint's encoder
    tracker = StreamingTracker(build_tiny_tracker("sam2.1_hiera_t", image_size=engine.cfg.sam2.image_size)[0])
    with pytest.raises(ValueError, match="another SAM2 image encoder"):
        tracker.add_object(foreign)
    own = g.tracker_grounding(frames, range(len(frames)), tracker_sam2=tracker.sam2)
    assert own.raw_features == [None] * 5  # another encoder's: not handed over
    assert all(p is g.sam2_pixels[i] for p, i in zip(own.pixels, g.sampled_indices, strict=True))  # same size
    assert tracker.add_object(own).obj_id == 1
