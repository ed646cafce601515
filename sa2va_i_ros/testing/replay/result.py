"""What a replay saw: every message the observer received, keyed by header stamp, and the node's counts.

The observer fills a ``ReplayResult``; the checks judge it, so they run on
hand-made results too (test/test_replay_check.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field


def stamp_ns(header) -> int:
    """A header's stamp in nanoseconds: the key of every per-frame dict here."""
    from sa2va_i_ros.ros.conversions import stamp_to_ns

    return stamp_to_ns(header.stamp)


@dataclass
class ReplayResult:
    reply: object = None  # Segment.Response
    camera_headers: dict = field(default_factory=dict)  # stamp_ns -> header of each camera frame seen here
    camera_times: dict = field(default_factory=dict)  # stamp_ns -> monotonic receive time here
    objects: dict = field(default_factory=dict)  # stamp_ns -> TrackedObjectArray
    object_times: dict = field(default_factory=dict)  # stamp_ns -> monotonic receive time here
    masks: dict = field(default_factory=dict)  # stamp_ns -> Image
    points: dict = field(default_factory=dict)  # stamp_ns -> PointCloud2
    overlays: dict = field(default_factory=dict)  # stamp_ns -> Image
    markers: list = field(default_factory=list)  # MarkerArray messages in arrival order
    query_time: float = 0.0  # monotonic time the query was sent
    events: list = field(default_factory=list)
    query_sent_after: int = 0  # camera frames seen when the query was sent
    reply_time: float = 0.0  # monotonic time the reply arrived here
    node_counts: dict = field(default_factory=dict)  # the node's worker counts (/diagnostics) after the replay
    node_newest: int = -1  # stamp of the newest frame the node received, from its settled report (-1: unknown)
    node_log: str = ""
    player_log: str = ""
    node_returncode: int | None = None

    def live_stamps(self) -> list[int]:
        """Stamps of the outputs the node made on live frames (the last ``frames_live`` of them: one track)."""
        live = int(self.node_counts.get("frames_live", 0))
        return sorted(self.objects)[-live:] if live else []

    def latencies_ms(self, live_only: bool = False) -> list[float]:
        """Camera frame seen here -> its objects message seen here, sorted.

        Frames that arrived while the query was grounded come out while the new
        track catches up; ``live_only`` keeps the frames it tracked live.
        """
        stamps = self.live_stamps() if live_only else self.object_times
        return sorted((self.object_times[s] - self.camera_times[s]) * 1e3 for s in stamps
                      if s in self.camera_times and s in self.object_times)
