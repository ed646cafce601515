"""Frame ring buffer: bounds, window selection, policies, snapshots, thread safety."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from sa2va_i_ros.imaging.image_codec import decode_rgb
from sa2va_i_ros.runtime.frame_buffer import FrameBuffer

MS = 1_000_000


def frame(value: int, h: int = 4, w: int = 6) -> np.ndarray:
    return np.full((h, w, 3), value % 256, np.uint8)


def stamps(buf: FrameBuffer) -> list[int]:
    return [f.stamp_ns for f in buf.window()]


def test_push_stores_an_owned_read_only_copy():
    buf = FrameBuffer()
    src = frame(9)
    view = src[:, ::-1]
    res = buf.push("hdr", 5, view)
    assert res.accepted and res.code == "ok" and res.reason == "" and res.dropped == 0
    f = buf.latest()
    assert f.header == "hdr" and f.stamp_ns == 5 and f.size == (4, 6)
    assert not np.shares_memory(f.rgb, src) and f.rgb.flags.c_contiguous
    src[:] = 200
    assert (f.rgb == 9).all()
    with pytest.raises(ValueError):
        f.rgb[0, 0, 0] = 1


@pytest.mark.parametrize("encoding,channels",
                         [("rgb8", 3), ("bgr8", 3), ("rgba8", 4), ("bgra8", 4), ("mono8", 1)])
def test_decoded_views_of_every_encoding_are_copied_exactly(encoding, channels):
    step = 7 * channels + 2  # padded rows
    data = bytearray(np.random.default_rng(1).integers(0, 256, 5 * step, dtype=np.uint8).tobytes())
    view = decode_rgb(5, 7, encoding, step, data)
    buf = FrameBuffer()
    buf.push(None, 1, view)
    stored = buf.latest().rgb
    np.testing.assert_array_equal(stored, view)
    assert stored.flags.c_contiguous and not np.shares_memory(stored, np.frombuffer(data, np.uint8))
    data[:] = bytes(len(data))  # rclpy reuses the message buffer
    assert stored.any()


def test_bounded_by_count():
    buf = FrameBuffer(max_frames=5)
    for k in range(12):
        buf.push(None, k, frame(k))
    assert stamps(buf) == [7, 8, 9, 10, 11]
    assert buf.stats().evicted_by_count == 7 and buf.stats().accepted == 12


def test_bounded_by_seconds_relative_to_newest():
    buf = FrameBuffer(max_seconds=1.0)
    for t in (0, 500, 1000):
        buf.push(None, t * MS, frame(t))
    assert stamps(buf) == [0, 500 * MS, 1000 * MS]  # exactly 1 s old is kept
    res = buf.push(None, 1600 * MS, frame(0))
    assert stamps(buf) == [1000 * MS, 1600 * MS] and res.dropped == 2
    assert buf.stats().evicted_by_age == 2


def test_bounded_by_bytes():
    buf = FrameBuffer(max_bytes=1000)  # 4x6x3 = 72 bytes per frame -> 13 frames
    for k in range(40):
        buf.push(None, k, frame(k))
        assert buf.nbytes <= 1000
    assert len(buf) == 13 and buf.nbytes == 13 * 72
    assert buf.stats().evicted_by_bytes == 27


def test_frame_larger_than_the_byte_bound_is_rejected():
    buf = FrameBuffer(max_bytes=50)
    res = buf.push(None, 1, frame(1))
    assert not res.accepted and res.code == "too_large" and "max_bytes=50" in res.reason
    assert len(buf) == 0 and buf.stats().too_large == 1


def test_window_selects_by_stamp():
    buf = FrameBuffer()
    assert buf.window() == () and buf.window(1.0) == () and buf.latest() is None
    for k in range(10):
        buf.push(None, k * 100 * MS, frame(k))
    assert [f.stamp_ns // (100 * MS) for f in buf.window(0.3)] == [6, 7, 8, 9]
    assert [f.stamp_ns // (100 * MS) for f in buf.window(0.25)] == [7, 8, 9]
    assert len(buf.window(0)) == 10 and len(buf.window(100.0)) == 10
    assert [f.stamp_ns for f in buf.window(1e-9)] == [900 * MS]
    with pytest.raises(ValueError):
        buf.window(-1)


def test_out_of_order_and_duplicate_stamps_are_rejected_with_reasons():
    buf = FrameBuffer()
    buf.push(None, 100 * MS, frame(1))
    buf.push(None, 200 * MS, frame(2))
    late = buf.push(None, 150 * MS, frame(3))
    assert not late.accepted and late.code == "out_of_order" and "50.0 ms older" in late.reason
    dup = buf.push(None, 200 * MS, frame(4))
    assert not dup.accepted and dup.code == "duplicate"
    assert stamps(buf) == [100 * MS, 200 * MS] and (buf.latest().rgb == 2).all()
    st = buf.stats()
    assert (st.out_of_order, st.duplicate, st.accepted) == (1, 1, 2)


def test_clear_lets_an_older_clock_in_again():
    buf = FrameBuffer()
    buf.push(None, 10_000, frame(1))
    buf.push(None, 20_000, frame(2))
    assert buf.clear() == 2 and len(buf) == 0 and buf.nbytes == 0
    assert buf.push(None, 5, frame(3)).accepted
    assert buf.stats().cleared == 2


def test_size_change_clears_older_frames():
    buf = FrameBuffer()
    for k in range(3):
        buf.push(None, k, frame(k, 4, 6))
    res = buf.push(None, 3, frame(3, 8, 6))
    assert res.accepted and res.code == "size_change" and res.dropped == 3
    assert "6x4 to 6x8" in res.reason
    assert stamps(buf) == [3] and buf.nbytes == 8 * 6 * 3
    assert buf.stats().size_changes == 1 and buf.stats().cleared == 3


def test_snapshot_is_unchanged_by_rotation():
    buf = FrameBuffer(max_frames=4)
    for k in range(4):
        buf.push(None, k, frame(k))
    snap = buf.window()
    for k in range(4, 20):
        buf.push(None, k, frame(k, 8, 8) if k == 10 else frame(k))
    assert [f.stamp_ns for f in snap] == [0, 1, 2, 3]
    assert all((f.rgb == f.stamp_ns).all() for f in snap)
    assert stamps(buf) == [16, 17, 18, 19]
    with pytest.raises(ValueError):
        snap[0].rgb[:] = 0
    with pytest.raises(AttributeError):
        snap[0].stamp_ns = 7


def test_memory_stays_bounded_under_bursts_of_mixed_sizes():
    rng = np.random.default_rng(0)
    sizes = [(48, 64), (96, 128), (120, 160), (8, 8)]
    buf = FrameBuffer(max_frames=30, max_seconds=0.5, max_bytes=200_000)
    t = 0
    for _ in range(600):
        t += int(rng.integers(1, 40)) * MS
        h, w = sizes[0] if rng.random() < 0.9 else sizes[rng.integers(len(sizes))]
        res = buf.push(None, t, frame(t, h, w))
        win = buf.window()
        assert buf.nbytes <= 200_000 and len(win) <= 30
        assert buf.nbytes == sum(f.nbytes for f in win)
        assert len({f.size for f in win}) == 1
        assert res.accepted == (h * w * 3 <= 200_000)
        assert win[-1].stamp_ns - win[0].stamp_ns <= 500 * MS


def test_downscale_keeps_camera_size_and_aspect():
    buf = FrameBuffer(downscale=32)
    img = np.zeros((64, 128, 3), np.uint8)
    img[:, 64:] = 200
    buf.push(None, 1, img)
    f = buf.latest()
    assert f.rgb.shape == (16, 32, 3) and f.size == (64, 128) and not f.rgb.flags.writeable
    assert (f.rgb[:, :16] == 0).all() and (f.rgb[:, 16:] == 200).all()  # box filter: no bleed at x=64
    buf.push(None, 2, frame(5, 20, 30))  # smaller than the bound: stored as is
    assert buf.latest().rgb.shape == (20, 30, 3)
    assert buf.stored_size(720, 1280) == (18, 32)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        FrameBuffer(max_frames=0)
    with pytest.raises(ValueError):
        FrameBuffer(max_seconds=float("nan"))
    with pytest.raises(ValueError):
        FrameBuffer(downscale=0)
    buf = FrameBuffer()
    for bad in (np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros((0, 4, 3), np.uint8)):
        with pytest.raises(ValueError):
            buf.push(None, 1, bad)
    with pytest.raises(ValueError):
        buf.push(None, 1, "x")
    with pytest.raises(TypeError):
        buf.push(None, 1.5, frame(1))


def test_concurrent_push_and_window():
    """A writer rotates the buffer while a reader checks every snapshot is consistent."""
    buf = FrameBuffer(max_frames=8)
    errors: list[str] = []
    done = threading.Event()

    def reader():
        while not done.is_set():
            snap = buf.window()
            got = [f.stamp_ns for f in snap]
            if got != sorted(set(got)) or len(snap) > 8:
                errors.append(f"bad order {got}")
            if any(not (f.rgb == f.stamp_ns % 256).all() for f in snap):
                errors.append("pixels changed under a snapshot")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for k in range(2000):
            buf.push(None, k, frame(k, 16, 16))
    finally:
        done.set()
        thread.join()
    assert errors == []
    assert stamps(buf) == list(range(1992, 2000))
