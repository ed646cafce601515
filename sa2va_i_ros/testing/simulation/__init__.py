"""A discrete-event simulation of the perception worker at GPU and Jetson timings.

The real ``PerceptionWorker`` and ``Session`` run unchanged; only time and the
model calls are simulated: ``SimClock`` is the worker's clock, and the
stand-ins for the grounding engine and the tracker (``standins.py``) advance it
by the cost of each call under a ``Profile`` (``profiles.py``) instead of
computing anything. ``Simulation`` (``driver.py``) delivers camera frames,
requests, cancels, stops and lifecycle cleanups at their simulated times and
runs the worker one unit at a time, in one thread: deterministic, no sleeps,
ten simulated minutes in seconds. The model calls run on an asynchronous
device stand-in (``device.py``: a call returns at once, its time is charged
when the worker synchronises or reads a result back); the tracker's costs are
not linear in the objects (one encoder pass per live step); frames arrive in
the middle of steps; publishing costs host time. ``WallClock`` runs the same
stand-ins in real time under the threaded worker
(``test/test_simulation_threaded.py``). It tests scheduling only; the real
model and tracker have their own exactness tests.
"""

from sa2va_i_ros.testing.simulation.clock import SimClock, WallClock
from sa2va_i_ros.testing.simulation.device import AsyncDevice
from sa2va_i_ros.testing.simulation.driver import Simulation
from sa2va_i_ros.testing.simulation.profiles import DESKTOP_GPU, JETSON, PROFILES, Profile
from sa2va_i_ros.testing.simulation.standins import StandInEngine, StandInTracker

__all__ = ["DESKTOP_GPU", "JETSON", "PROFILES", "AsyncDevice", "Profile", "SimClock", "Simulation", "StandInEngine",
           "StandInTracker", "WallClock"]
