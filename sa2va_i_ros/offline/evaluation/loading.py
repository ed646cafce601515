"""What an evaluation feeds the model: the segmenter for a checkpoint, and SaSaSa2VA's q_frame selection.

Kept apart from the run so that the command (and the tests, with their doubles) hands
the run its loader: the pipelines import torch and sam2, which a bare install may lack.
"""

from __future__ import annotations

import json
from pathlib import Path

from sa2va_i_ros.offline.evaluation.datasets import Expression
from sa2va_i_ros.offline.evaluation.plan import UsageError
from sa2va_i_ros.offline.evaluation.settings import EvalSettings
from sa2va_i_ros.offline.evaluation.worker import VideoSegmenter


class SegmenterUnavailable(RuntimeError):
    """The inference pipeline cannot be imported."""


def load_segmenter(model: str, device: str = "cpu", dtype: str = "float32", original_sam2: str | None = None,
                   **load_settings) -> VideoSegmenter:
    """The project's offline pipeline for the checkpoint's kind (Sa2VA-i or SaSaSa2VA, from config.json).

    ``tracker_model`` / ``tracker_weights`` (settings): the propagation model (default the
    checkpoint's SAM2; another applies to Sa2VA / Sa2VA-i checkpoints only, docs/TRACKER.md).
    """
    try:
        # both pipelines implement VideoSegmenter; they import torch and sam2, which a bare install may lack
        from sa2va_i_ros.offline.pipeline import load_video_pipeline
        from sa2va_i_ros.tracking import TrackerChoice
    except ImportError as exc:
        raise SegmenterUnavailable(f"the inference pipeline (sa2va_i_ros.offline.pipeline.VideoPipeline) cannot "
                                   f"be imported: {exc}") from exc
    tracker = TrackerChoice(load_settings.pop("tracker_model", None) or "checkpoint",
                            load_settings.pop("tracker_weights", None) or "")
    backend = (load_settings.pop("tracker_backend", None) or "torch", load_settings.pop("tracker_onnx_dir", None) or "")
    return load_video_pipeline(model, device=device, dtype=dtype, original_sam2=original_sam2, tracker=tracker,
                               tracker_backend=backend, **load_settings)


def load_q_frames(path: str) -> dict:
    """SaSaSa2VA's selected_frames.json: {video: {"selected_frames": {eid: [100 frame indices]}}}."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return {(video, str(eid)): list(ids) for video, entry in data.items()
                for eid, ids in entry["selected_frames"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{path}: not a selected_frames.json ({exc})") from exc


def q_frame_option(path: str | None, selected: dict | None):
    """The per-expression ``q_frame`` selection of SaSaSa2VA's q_frame mode (nothing for other settings)."""

    def extra(settings: EvalSettings, expr: Expression) -> dict:
        if settings.mode != "q_frame":
            return {}
        key = (expr.video, str(expr.eid))
        if selected is None or key not in selected:
            raise ValueError(f"{path} has no selected frames for {expr.video}/{expr.eid}")
        return {"q_frame": selected[key]}

    return extra
