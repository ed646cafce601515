"""Which engine a checkpoint needs: config.json's model_type picks Sa2VA-i's ``GroundingEngine`` or SaSaSa2VA's.

No parameter can say otherwise: a checkpoint is what its config says. The node
(``load_grounding_engine``) and the offline pipeline (``load_video_pipeline``)
both ask here.
"""

from __future__ import annotations

from sa2va_i_ros.grounding.engine import GroundingEngine
from sa2va_i_ros.tracking import TrackerChoice


def load_grounding_engine(model: str, device: str = "cpu", dtype: str = "float32", original_sam2=None,
                          revision: str | None = None, lm_devices=None,
                          tracker: TrackerChoice | None = None) -> GroundingEngine:
    """The node's grounding engine for a checkpoint, by config.json's model_type.

    ``GroundingEngine`` (Sa2VA / Sa2VA-i) or ``SaSaSa2VAEngine`` (``sasasa2va_chat``,
    docs/SASASA2VA.md "In the node"); both answer ``ground_steps`` on a window.
    """
    if checkpoint_kind(model, revision) == "sasasa2va":
        from sa2va_i_ros.grounding.sasasa2va.streaming import SaSaSa2VAEngine

        checkpoint_tracker_only(tracker)
        return SaSaSa2VAEngine.load(model, device=device, dtype=dtype, original_sam2=original_sam2,
                                    revision=revision, lm_devices=lm_devices)
    return GroundingEngine.load(model, device=device, dtype=dtype, original_sam2=original_sam2, revision=revision,
                                lm_devices=lm_devices)


def checkpoint_tracker_only(tracker: TrackerChoice | None) -> None:
    if tracker is not None and not tracker.is_checkpoint:
        raise ValueError("a tracker model other than 'checkpoint' applies to Sa2VA / Sa2VA-i checkpoints; "
                         "SaSaSa2VA propagates with its own SAM2")


def checkpoint_kind(model: str, revision: str | None = None) -> str:
    """"sa2va" or "sasasa2va": config.json's model_type (``Sa2VAConfig.kind``); no parameter can say otherwise."""
    from sa2va_i_ros.model.checkpoint.config import read_config
    from sa2va_i_ros.model.checkpoint.load import resolve

    return read_config(resolve(model, revision), name=model).kind
