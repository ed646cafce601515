"""Per-frame cost of the camera plumbing: decoding, copy into the ring buffer, push, outputs.

``python -m bench.bench_buffer`` prints JSON; ``run(out)`` adds the same keys to ``out``.
Every figure is the median in microseconds over ``FRAMES`` frames. Input messages
carry their payload in an ``array.array('B')``, as rclpy delivers it, and rotate
over a few buffers so that copies do not all hit a hot cache. When ``rosbags.image``
is importable (never a dependency: install it beside the venv to compare), its
conversions are measured on the same messages.
"""

from __future__ import annotations

import array
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np

from sa2va_i_ros.imaging import geometry, image_codec
from sa2va_i_ros.runtime.frame_buffer import FrameBuffer, copy_rgb

FRAMES = 300
SIZES = {"640x480": (480, 640), "1280x720": (720, 1280)}
_BYTES_PER_PIXEL = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "mono8": 1, "16UC1": 2, "32FC1": 4}


def _median_us(fn, n: int = FRAMES) -> float:
    fn(0)  # warm-up
    times = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        fn(i)
        times.append(time.perf_counter_ns() - t0)
    return round(statistics.median(times) / 1e3, 1)


def _messages(encoding: str, h: int, w: int, count: int = 8) -> list[SimpleNamespace]:
    rng = np.random.default_rng(0)
    step = w * _BYTES_PER_PIXEL[encoding]
    msgs = []
    for _ in range(count):
        if encoding == "32FC1":
            payload = rng.uniform(0.3, 5.0, h * w).astype("<f4").tobytes()
        else:
            payload = rng.integers(0, 256, h * step, dtype=np.uint8).tobytes()
        msgs.append(SimpleNamespace(height=h, width=w, encoding=encoding, step=step, is_bigendian=0,
                                    data=array.array("B", payload)))
    return msgs


def _decoder(msg) -> Callable[[], np.ndarray]:
    depth = msg.encoding in image_codec.DEPTH_ENCODINGS
    decode = image_codec.decode_depth if depth else image_codec.decode_rgb
    return lambda: decode(msg.height, msg.width, msg.encoding, msg.step, msg.data, msg.is_bigendian)


def _machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}"


def _codec(out: dict) -> None:
    h, w = SIZES["640x480"]
    for enc in _BYTES_PER_PIXEL:
        decoders = [_decoder(m) for m in _messages(enc, h, w)]
        out[f"codec.{enc.lower()}_us_640x480"] = _median_us(lambda i, d=decoders: d[i % len(d)]())
    mask = np.zeros((h, w), bool)
    mask[100:300, 200:400] = True
    ids = mask.astype(np.uint16) * 3
    rgb = np.zeros((h, w, 3), np.uint8)
    out["codec.encode_mask_us_640x480"] = _median_us(lambda i: image_codec.encode_mask(mask))
    out["codec.encode_instances_us_640x480"] = _median_us(lambda i: image_codec.encode_instances(ids))
    out["codec.encode_rgb_us_640x480"] = _median_us(lambda i: image_codec.encode_rgb(rgb))


def _buffer(out: dict) -> None:
    for size, (h, w) in SIZES.items():
        for enc, key in (("rgb8", f"buffer.push_us_{size}"), ("bgr8", f"buffer.push_bgr8_us_{size}")):
            msgs = _messages(enc, h, w)
            buf = FrameBuffer(max_frames=64, max_seconds=10.0, max_bytes=1 << 30)

            def push(i, msgs=msgs, buf=buf):
                m = msgs[i % len(msgs)]
                buf.push(None, (i + 1) * 33_000_000,
                         image_codec.decode_rgb(m.height, m.width, m.encoding, m.step, m.data))

            out[key] = _median_us(push, FRAMES + 64)
        for enc in ("rgb8", "bgr8"):
            views = [image_codec.decode_rgb(m.height, m.width, m.encoding, m.step, m.data)
                     for m in _messages(enc, h, w)]
            out[f"buffer.copy_in_{enc}_us_{size}"] = _median_us(lambda i, v=views: copy_rgb(v[i % len(v)]))
    msgs = _messages("rgb8", *SIZES["1280x720"])
    small = FrameBuffer(downscale=448)
    out["buffer.push_downscale448_us_1280x720"] = _median_us(
        lambda i: small.push(None, i + 1, image_codec.decode_rgb(720, 1280, "rgb8", 3840, msgs[i % 8].data)))


def _camera_frames(h: int, w: int, count: int = 4) -> list[np.ndarray]:
    """Frames of the synthetic tabletop at this size: JPEG cost depends on content, noise would overstate it."""
    from sa2va_i_ros.testing.synthetic.scene import SceneSpec, render

    spec = SceneSpec(width=w, height=h, frames=count * 10)
    return [render(spec, 10 * k).rgb for k in range(count)]


def _compressed(out: dict) -> None:
    """CompressedImage input: JPEG decode + push per frame, beside the raw path's ``buffer.push_us_*``."""
    from sa2va_i_ros.imaging import compressed_codec as cc

    for size, (h, w) in SIZES.items():
        frames = _camera_frames(h, w)
        jpegs = [cc.encode_jpeg(f, 95) for f in frames]  # image_transport's default quality
        buf = FrameBuffer(max_frames=64, max_seconds=10.0, max_bytes=1 << 30)

        def push(i, jpegs=jpegs, buf=buf):
            fmt, data = jpegs[i % len(jpegs)]
            buf.push(None, (i + 1) * 33_000_000, cc.decode_compressed_rgb(fmt, array.array("B", data)))

        out[f"buffer.compressed_push_us_{size}"] = _median_us(push, FRAMES + 64)
        out[f"codec.jpeg_bytes_{size}"] = round(statistics.mean(len(d) for _, d in jpegs))

    _jpeg_decoders(out)


def _jpeg_decoders(out: dict) -> None:
    """The decoder used beside the alternative measured for docs/DECISIONS.md (Pillow's libjpeg-turbo)."""
    import io

    from PIL import Image

    from sa2va_i_ros.imaging import compressed_codec as cc

    h, w = SIZES["640x480"]
    datas = [cc.encode_jpeg(f, 95)[1] for f in _camera_frames(h, w)]
    out["codec.jpeg_simplejpeg_us_640x480"] = _median_us(
        lambda i: cc.decode_compressed_rgb("rgb8; jpeg compressed bgr8", datas[i % len(datas)]))

    def pillow(i):
        img = Image.open(io.BytesIO(datas[i % len(datas)]))
        img.load()
        return np.asarray(img)

    out["codec.jpeg_pillow_us_640x480"] = _median_us(pillow)
    depth = [cc.encode_depth_16uc1(np.full((h, w), 800, np.uint16) + k) for k in range(4)]
    out["codec.compressed_depth_us_640x480"] = _median_us(lambda i: cc.decode_compressed_depth(*depth[i % len(depth)]))


def _geometry(out: dict) -> None:
    h, w = SIZES["640x480"]
    intr = geometry.Intrinsics(600.0, 600.0, 319.5, 239.5, w, h)
    depth = np.full((h, w), 1.5, np.float32)
    mask = np.zeros((h, w), bool)
    mask[100:300, 200:400] = True  # 40,000 pixels
    rgb = np.zeros((h, w, 3), np.uint8)
    out["geometry.centroid_us_640x480_40k_px"] = _median_us(lambda i: geometry.centroid(mask, depth, intr))
    out["geometry.overlay_us_640x480_1_obj"] = _median_us(lambda i: geometry.overlay(rgb, {1: mask}), 100)


def _ros(out: dict) -> None:
    try:
        from sensor_msgs.msg import Image
        from std_msgs.msg import Header

        from sa2va_i_ros.ros import conversions
    except ImportError:
        return
    h, w = SIZES["640x480"]
    mask = np.zeros((h, w), bool)
    mask[100:300, 200:400] = True
    rgb = np.zeros((h, w, 3), np.uint8)
    hdr = Header(frame_id="camera")
    out["ros.mask_msg_us_640x480"] = _median_us(lambda i: conversions.mask_to_image_msg(mask, hdr))
    out["ros.rgb_msg_us_640x480"] = _median_us(lambda i: conversions.rgb_to_image_msg(rgb, hdr))
    msg = conversions.rgb_to_image_msg(rgb, hdr)
    checked = Image(check_fields=True)  # as with ROS_PYTHON_CHECK_FIELDS=1: every byte is checked in Python
    out["ros.payload_frombytes_us_640x480"] = _median_us(
        lambda i: setattr(msg, "data", conversions.uint8_payload(rgb)))
    out["ros.payload_tobytes_us_640x480"] = _median_us(lambda i: setattr(msg, "data", rgb.tobytes()))
    out["ros.payload_tobytes_checked_fields_us_640x480"] = _median_us(
        lambda i: setattr(checked, "data", rgb.tobytes()), 5)
    pts = np.random.default_rng(0).normal(size=(10_000, 3)).astype(np.float32)
    out["ros.pointcloud2_us_10k_points"] = _median_us(lambda i: conversions.points_to_pointcloud2(pts, hdr))


def _rosbags_image(out: dict) -> None:
    try:
        from rosbags.image import image_to_cvimage
    except ImportError:
        return
    def owned(msg):  # what the ring buffer needs: an array that does not alias the message
        img = image_to_cvimage(msg, "rgb8")
        return np.array(img) if np.may_share_memory(img, np.frombuffer(msg.data, np.uint8)) else img

    h, w = SIZES["640x480"]
    for enc in ("rgb8", "bgr8"):
        msgs = _messages(enc, h, w)
        out[f"rosbags_image.{enc}_us_640x480"] = _median_us(
            lambda i, m=msgs: image_to_cvimage(m[i % 8], "rgb8"))
        out[f"rosbags_image.{enc}_owned_us_640x480"] = _median_us(lambda i, m=msgs: owned(m[i % 8]))
        out[f"codec.{enc}_owned_us_640x480"] = _median_us(lambda i, m=msgs: copy_rgb(_decoder(m[i % 8])()))
    msgs = _messages("16UC1", h, w)
    out["rosbags_image.16uc1_us_640x480"] = _median_us(
        lambda i: np.multiply(image_to_cvimage(msgs[i % 8]), np.float32(0.001), dtype=np.float32))


def run(out: dict) -> dict:
    out["bench_buffer.machine"] = _machine()
    out["bench_buffer.frames"] = FRAMES
    for part in (_codec, _buffer, _compressed, _geometry, _ros, _rosbags_image):
        part(out)
    return out


if __name__ == "__main__":
    print(json.dumps(run({}), indent=2))
