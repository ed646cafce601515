"""Whether a request's catch-up can meet ``max_catch_up_sec``, by the measured costs.

Checked after every prompted frame seeded (the deadline was set before the first, so
the budget covers seeding): the time since seeding began plus the least the
rest can take (``scheduling.expected_join_s``: the prompts left, live steps
in between, the frames the catch-up may not skip, the first live step with
the new objects). When that exceeds the budget the request's reply says so
(``Record.warning``) and the worker's ``budget`` reading (expected join time,
budget) puts a WARN on /diagnostics until a request fits again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sa2va_i_ros.runtime.scheduling import expected_join_s

if TYPE_CHECKING:
    from sa2va_i_ros.runtime.worker.job import Job
    from sa2va_i_ros.runtime.worker.worker import PerceptionWorker


def budget_check(w: PerceptionWorker, job: Job) -> float | None:
    """Expected seconds from the start of seeding to the join (None before costs are measured); sets
    ``w.budget`` and, over budget, ``job.record.warning``."""
    g = job.grounding
    seeds = getattr(g.result, "seeds", None)  # SaSaSa2VA seeds the tracker from its own frames
    sampled = sorted(set(g.result.sampled_indices if seeds is None else seeds))
    prompts = sampled if g.policy == "all" else sampled[:1]
    objects = 1 if job.ticket.reseed else max(1, g.result.num_objects)
    left = max(0, len(prompts) * objects - job.seeded_prompts)
    window_end_prompted = (len(g.window) - 1) in prompts
    tracked = len(w.session.tracker.object_ids) - (1 if job.ticket.reseed else 0)
    rest = expected_join_s(w.costs, objects, tracked, left, 1 if window_end_prompted else 2)
    if rest is None:
        return None
    expected = w.clock.now() - job.record.seeded + rest
    budget = w.session.settings.max_catch_up_sec
    w.budget = (expected, budget)
    if expected > budget and not job.record.warning:
        job.record.warning = (f"max_catch_up_sec {budget:g} s cannot be met: by the measured costs the new "
                              f"object(s) join the live stream about {expected:.2f} s after seeding starts "
                              f"({objects} new, {tracked} tracked); raise max_catch_up_sec, ask with fewer "
                              "num_frames, or use a faster tracker")
    return expected
