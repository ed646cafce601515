"""A discrete-event simulation of the perception worker at GPU and Jetson timings.

The real ``PerceptionWorker`` and ``Session`` run unchanged; only time and the
model calls are simulated: ``SimClock`` is the worker's clock, and the
stand-ins for the grounding engine and the tracker (``standins.py``) advance it
by the cost of each call under a ``Profile`` (``profiles.py``) instead of
computing anything. ``Simulation`` (``driver.py``) delivers camera frames,
requests, cancels, stops and lifecycle cleanups at their simulated times and
runs the worker one unit at a time, in one thread: deterministic, no sleeps,
ten simulated minutes in seconds. It tests scheduling only; the real model and
tracker have their own exactness tests.
"""

from sa2va_i_ros.testing.simulation.clock import SimClock
from sa2va_i_ros.testing.simulation.driver import Simulation
from sa2va_i_ros.testing.simulation.profiles import DESKTOP_GPU, JETSON, PROFILES, Profile
from sa2va_i_ros.testing.simulation.standins import StandInEngine, StandInTracker

__all__ = ["DESKTOP_GPU", "JETSON", "PROFILES", "Profile", "SimClock", "Simulation", "StandInEngine",
           "StandInTracker"]
