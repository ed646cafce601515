"""Which rank evaluates which expression: a deterministic split balanced by frame count.

The cost of an expression grows with its video's length (SAM2 propagates
through every frame), so an even split of the expressions is not an even
split of the work. Greedy longest-processing-time: items sorted by cost,
largest first (ties by their position in the list), each given to the rank
with the least cost so far (ties: the lowest rank). The largest finishing time
is then at most 4/3 of the best possible. Every rank computes the same split
from the same list; each rank then keeps its items in list order, so the
expressions of one video stay together (its frames are read once).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence


def shard(costs: Sequence[float], world_size: int) -> list[list[int]]:
    """Indices into ``costs`` for each of ``world_size`` ranks, each list in ascending order."""
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}")
    if any(c < 0 for c in costs):
        raise ValueError("costs must not be negative")
    order = sorted(range(len(costs)), key=lambda i: (-costs[i], i))
    loads = [(0.0, rank) for rank in range(world_size)]  # a heap of (cost so far, rank)
    parts: list[list[int]] = [[] for _ in range(world_size)]
    for i in order:
        load, rank = heapq.heappop(loads)
        parts[rank].append(i)
        heapq.heappush(loads, (load + costs[i], rank))
    return [sorted(p) for p in parts]
