"""The demo's pictures on their own: annotated frames, the video they make, the timeline plot."""

from __future__ import annotations

import numpy as np
from PIL import Image

from sa2va_i_ros.cli.demo_media import FrameView, TrackView, annotate, plot_timeline
from sa2va_i_ros.imaging.geometry import id_color
from sa2va_i_ros.offline.media import read_frames, write_video

H, W = 120, 160


def grey(level=90) -> np.ndarray:
    return np.full((H, W, 3), level, np.uint8)


def square_mask() -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[60:100, 80:130] = True
    return m


def test_annotation_paints_the_mask_in_its_track_colour_and_writes_stamp_and_label():
    view = FrameView(4, 1_700_000_000_266_666_667, grey(), [TrackView(2, "the cup", 0.87, True, square_mask())],
                     "tracked live")
    out = annotate(view, 90)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    inside = out[75, 100].astype(int)  # blended halfway towards the track colour
    expected = np.rint(0.5 * 90 + 0.5 * np.array(id_color(2)))
    assert np.abs(inside - expected).max() <= 1
    assert (out[H - 5, 5] == 90).all()  # far from everything: untouched
    assert (out[:12, :] != 90).any()  # the stamp line at the top
    label_band = out[40:60, 80:160]  # the label sits above the mask's box
    assert (label_band != 90).any()


def test_frames_without_tracks_still_carry_the_stamp_line_only():
    out = annotate(FrameView(0, 1_700_000_000_000_000_000, grey(), [], "no track yet"), 90)
    assert (out[:12, :] != 90).any() and (out[30:, :] == 90).all()


def test_video_holds_every_annotated_frame(tmp_path):
    frames = [annotate(FrameView(i, i, grey(40 + i), [], "no track yet"), 12) for i in range(12)]
    write_video(tmp_path / "v.mp4", frames, 15.0)
    decoded, _, fps = read_frames(tmp_path / "v.mp4")
    assert len(decoded) == 12 and decoded[0].shape == (H, W, 3) and fps == 15.0
    assert abs(int(decoded[-1][H - 5, 5, 0]) - (40 + 11)) <= 3  # the last frame is the last one written


def test_timeline_is_a_png_with_both_panels(tmp_path):
    latency = {i: 50.0 + i for i in range(20, 60)}
    live = set(range(40, 60))
    scores = {1: {i: 0.9 if i < 45 else 0.1 for i in range(20, 60)}}
    plot_timeline(tmp_path / "t.png", latency, live, scores, {1: "the cup"}, [(20, 1, 0), (50, 1, 1)], 60,
                  query_index=19)
    img = Image.open(tmp_path / "t.png")
    assert img.format == "PNG" and img.width >= 800 and img.height >= 500
    pixels = np.asarray(img.convert("RGB")).reshape(-1, 3)
    green = np.array([44, 160, 44])  # matplotlib's tab:green, the live frames
    orange = np.array([255, 127, 14])  # tab:orange, the catch-up frames
    assert (np.abs(pixels - green).sum(axis=1) < 10).any() and (np.abs(pixels - orange).sum(axis=1) < 10).any()
