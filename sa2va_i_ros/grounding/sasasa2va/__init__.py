"""SaSaSa2VA (Sa2VA with "Segmentation Augmentation", LSVOS 2025 RVOS winner) as its own pipeline.

``modes``: the five inference modes' frame sampling and [SEG]-to-frame plans
(pure Python); ``images``: key frame + 3x3 grid per clip; ``sam2_steps``:
language prompts with object-score gating and their memory; ``model``:
checkpoint loading; ``pipeline``: ``SaSaSa2VAPipeline`` (whole video, one
query); ``streaming``: its grounding for the node. Tiny checkpoints in its layout:
``sa2va_i_ros.testing.tiny_sasasa2va``. docs/SASASA2VA.md.
"""
