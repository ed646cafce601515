"""What a replay is asked to do: the bag, the model, the query and when to send it, what to subscribe to."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sa2va_i_ros.testing.synthetic.bag_writer import COLOR_TOPIC, COMPRESSED_COLOR_TOPIC

QUERY = "the cup left of the bowl"


@dataclass
class ReplayOptions:
    bag: Path
    model: Path
    query: str = QUERY
    query_after: int = 20  # camera frames seen before the query is sent
    use_depth: bool = True
    node_name: str = "sa2va_i"
    rate: float = 1.0
    timeout_s: float = 180.0
    want_overlay: bool = False  # subscribe to ~/overlay (the node renders it only for subscribers)
    want_markers: bool = False  # subscribe to ~/markers
    compressed: bool = False  # the bag holds image_transport compressed topics: the node subscribes to those
    # stop the player once the node reports this many frames tracked live (0: play the whole bag): with a
    # long bag, a slow machine still sees the track on live frames, and a fast one ends early
    stop_after_live: int = 0
    params: dict = field(default_factory=dict)  # overrides on top of config/segment.yaml


def observed_camera_topic(opts: ReplayOptions) -> str:
    """The camera topic the observer counts frames on (the one the node takes)."""
    return COMPRESSED_COLOR_TOPIC if opts.compressed else COLOR_TOPIC
