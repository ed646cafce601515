"""Referring video object segmentation benchmarks: J&F metrics and dataset readers (no ROS, no model).

``metrics`` mirrors the DAVIS evaluation code; ``datasets`` reads Ref-DAVIS17,
MeViS, Ref-YouTube-VOS and the project's synthetic recording; ``run`` runs a
model over them for ``sa2va-i-eval`` (``sa2va_i_ros.cli.evaluate``, the command
line only). See docs/EVALUATION.md.
"""
