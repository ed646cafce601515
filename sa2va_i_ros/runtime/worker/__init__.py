"""The perception worker: the one thread that calls the model and the tracker.

Callers (the ROS node's callbacks, tests, the simulator) never wait on a model
call. They hand frames over (``offer_frame``: buffer push plus the worker's
inbox), submit requests (``submit``: a bounded queue; beyond it the request is
answered "busy" at once), stop tracks (``stop``) and change settings
(``update``); the worker answers through callbacks and publishes what it
produced through an ``Emitter``. No lock is held across a model call.

One unit of work at a time, chosen by ``run_once``:

* a live step (every tracked object on the newest frame; older unprocessed
  frames are dropped and counted) whenever a new frame waits and objects are
  tracked; while background work exists, live and background steps alternate,
  so a tracked object's output gap is at most one background step plus one
  live step;
* otherwise one background step of the current request: its start (window
  snapshot), one grounding step (``GroundingEngine.ground_steps``), seeding the
  tracker, or one catch-up frame (``runtime/catch_up.py``), until the new object joins;
  then the next queued request (user requests before internal ones).

Automatic re-grounding (``runtime/regrounding.py``) is such an internal request: when
a track has been lost for ``reground_after_sec`` (frame stamps), its query is
grounded again on the last ``reground_window_sec`` of frames, one re-grounding
at a time, through the same interleaved steps. A user request that arrives
while it is still grounding pre-empts it (the attempt is retried later and
does not count as a miss). If the model finds the object (a non-empty mask on
a prompted frame, and the re-seeded object still visible once it caught up),
the re-seeded object replaces the lost one under the SAME track id
(``regrounded``); after ``reground_max_attempts`` misses, ``gave_up``.

The package, by seam: ``intake`` (tickets, queue, busy), ``job`` (one request's
phases as a state machine), ``outcomes`` (reply, join, abandon, rejoin),
``regrounds`` (re-groundings as internal requests), ``tracks`` (announced tracks,
output order, STOPPED), ``loop`` (``run_once``: the scheduling loop) and
``worker`` (the thread and the callers' API).

Time comes from an injectable clock and every model call goes through the
session's engine and tracker, so a discrete-event simulation can drive
``run_once`` with stand-ins that advance a simulated clock
(``sa2va_i_ros/testing/simulation``).
"""

from sa2va_i_ros.runtime.worker.intake import INTERNAL, USER, Record, Ticket
from sa2va_i_ros.runtime.worker.loop import TURN_SHARE
from sa2va_i_ros.runtime.worker.regrounds import reground_settings
from sa2va_i_ros.runtime.worker.tracks import Emitter, NullEmitter
from sa2va_i_ros.runtime.worker.worker import PerceptionWorker

__all__ = ["INTERNAL", "TURN_SHARE", "USER", "Emitter", "NullEmitter", "PerceptionWorker", "Record", "Ticket",
           "reground_settings"]
