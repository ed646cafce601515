"""Whole-video inference: the offline pipeline (sa2va-i-video), video files, J&F evaluation (sa2va-i-eval)."""
