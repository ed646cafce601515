"""Rigs for tests, demo and bench: tiny checkpoints and trackers, answer rig, simulation, scene, replay.

Nothing in production imports this package, except the command-line tools
that make those inputs for a user (``sa2va-i-tiny-checkpoint``,
``sa2va-i-make-bag``, ``make demo``).
"""
