"""The demo's pictures: an annotated video of the whole replay and a timeline plot.

Pure functions of plain data (no ROS types), so they are tested on their own:

* ``annotate``: one camera frame with each tracked object's mask blended in its
  track colour, its bounding box, a label "query #id  p=0.87" and, on every
  frame, the header stamp, the frame number and what the node did with it
  (no track yet, tracked live, tracked in catch-up);
* ``plot_timeline``: latency per frame (camera frame seen -> its objects message
  seen, live and catch-up frames told apart), presence score per track with the
  threshold, and the track events, against the frame number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sa2va_i_ros.imaging.geometry import id_color, mask_bbox, overlay

EVENT_NAMES = {0: "started", 1: "lost", 2: "found", 3: "stopped", 4: "regrounded", 5: "gave up"}


@dataclass(frozen=True)
class TrackView:
    """One tracked object on one frame, as the node published it."""

    track_id: int
    query: str
    score: float
    visible: bool
    mask: np.ndarray  # (H, W) bool at the camera's size


@dataclass(frozen=True)
class FrameView:
    index: int
    stamp_ns: int
    rgb: np.ndarray
    tracks: Sequence[TrackView]
    status: str  # "no track yet", "tracked live", "tracked in catch-up", "not tracked"


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def annotate(view: FrameView, total: int) -> np.ndarray:
    """The frame with masks, labels, stamp, frame number and status drawn on it (a new uint8 RGB array)."""
    rgb = np.ascontiguousarray(view.rgb)
    masks = {t.track_id: t.mask for t in view.tracks if t.mask.shape == rgb.shape[:2] and t.mask.any()}
    img = Image.fromarray(overlay(rgb, masks) if masks else rgb.copy())
    draw = ImageDraw.Draw(img)
    size = max(10, rgb.shape[0] // 22)
    font = _font(size)
    stamp = f"{view.stamp_ns // 1_000_000_000}.{view.stamp_ns % 1_000_000_000:09d}"
    header = f"frame {view.index + 1}/{total}  stamp {stamp}  {view.status}"
    header_box = draw.textbbox((2, 2), header, font=font)
    below_header = header_box[3] + 3
    for rank, t in enumerate(view.tracks):
        x, y, _, _ = mask_bbox(t.mask) if t.mask.any() else (4, below_header + rank * (size + 4), 0, 0)
        text = f"{t.query} #{t.track_id}  p={t.score:.2f}" + ("" if t.visible else "  (lost)")
        ty = max(below_header + rank * (size + 4), y - size - 4)  # above the mask, never under the stamp line
        box = draw.textbbox((x, ty), text, font=font)
        draw.rectangle(box, fill=(0, 0, 0))
        draw.text((x, ty), text, font=font, fill=id_color(t.track_id) if t.visible else (170, 170, 170))
    draw.rectangle(header_box, fill=(0, 0, 0))
    draw.text((2, 2), header, font=font, fill=(255, 255, 255))
    return np.asarray(img)


def plot_timeline(path: Path, latency_ms: dict[int, float], live: set[int], scores: dict[int, dict[int, float]],
                  queries: dict[int, str], events: Sequence[tuple[int, int, int]], total: int,
                  query_index: int | None = None, threshold: float = 0.5) -> None:
    """PNG with latency per frame (top) and presence score per track with the events (bottom).

    ``latency_ms`` and ``scores[track]`` map a frame index to a value; ``live`` holds
    the indices of frames tracked live; ``events`` are (frame index, track id, kind).
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True, constrained_layout=True)
    for name, keep, colour in (("tracked live", True, "tab:green"), ("tracked in catch-up", False, "tab:orange")):
        idx = sorted(i for i in latency_ms if (i in live) == keep)
        if idx:
            top.plot(idx, [latency_ms[i] for i in idx], "o", ms=3, color=colour, label=name)
    top.set_ylabel("camera frame -> objects (ms)")
    top.set_yscale("log" if latency_ms and max(latency_ms.values()) > 20 * max(1.0, min(latency_ms.values()))
                   else "linear")
    top.set_title("latency per frame (seen by a subscriber in another process)")
    for tid in sorted(scores):
        idx = sorted(scores[tid])
        colour = np.array(id_color(tid)) / 255.0
        bottom.plot(idx, [scores[tid][i] for i in idx], "-", color=colour, label=f"{queries.get(tid, '')} #{tid}")
    bottom.axhline(threshold, color="grey", ls=":", lw=1, label=f"presence threshold {threshold:g}")
    for index, tid, kind in events:
        bottom.axvline(index, color=np.array(id_color(tid)) / 255.0, ls="--", lw=1)
        bottom.annotate(EVENT_NAMES.get(kind, str(kind)), (index, 1.02), rotation=90, fontsize=8, va="bottom",
                        ha="center", annotation_clip=False)
    if query_index is not None:
        for ax in (top, bottom):
            ax.axvline(query_index, color="black", lw=1)
        top.annotate("query sent", (query_index, 1.0), xycoords=("data", "axes fraction"), fontsize=8,
                     ha="left", va="top")
    bottom.set_ylim(-0.02, 1.12)
    bottom.set_xlim(0, max(1, total - 1))
    bottom.set_xlabel("frame")
    bottom.set_ylabel("presence score")
    for ax in (top, bottom):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize=8)
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100)
    plt.close(fig)
