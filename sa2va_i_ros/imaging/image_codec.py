"""sensor_msgs/Image payloads to numpy and back, without cv_bridge and without ROS.

Works on the plain fields of an Image (height, width, encoding, step,
is_bigendian, data) so that the core stays free of ROS. Decoding never copies
where numpy can express the layout as a view over the message buffer:

* rgb8, rgba8, bgr8, bgra8: (H, W, 3) view; BGR is a channel-reversed view,
  the alpha channel is sliced away; row padding (``step``) lives in the strides.
* mono8: the grey plane broadcast to 3 channels (stride 0), still a view.
* 32FC1 in machine byte order: a float32 view (metres). Other byte order: one copy.
* 16UC1 (millimetres): one copy, the unavoidable conversion to float32 metres.

Every view is read-only, and it aliases the message buffer: whoever keeps a
frame past the callback must copy it (the frame buffer does). Zero depth stays 0
and NaN stays NaN; geometry treats both as "no depth".
"""

from __future__ import annotations

import operator
from typing import NamedTuple

import numpy as np

from sa2va_i_ros.errors import Sa2VAError

# encoding -> (channels in the buffer, index of R, G, B in the buffer's channels)
COLOR_ENCODINGS: dict[str, tuple[int, tuple[int, int, int]]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
}
# encoding -> (numpy kind, bytes per pixel, factor to metres)
DEPTH_ENCODINGS: dict[str, tuple[str, int, float]] = {
    "16UC1": ("u", 2, 0.001),
    "32FC1": ("f", 4, 1.0),
}


class ImageDecodeError(Sa2VAError, ValueError):
    """An Image message cannot be decoded; the node logs it and drops the frame."""


class UnsupportedEncoding(ImageDecodeError):
    """The encoding is not one this node reads; the message lists those it does."""

    def __init__(self, encoding: object, supported: list[str]):
        self.encoding = encoding
        super().__init__(f"unsupported image encoding {encoding!r}; supported: {', '.join(supported)}")


class InvalidImage(ImageDecodeError):
    """The fields contradict each other (sizes, step, length of data)."""


class EncodedImage(NamedTuple):
    """Fields of an outgoing Image; ``data`` is a C-contiguous uint8 array (one copy into the message)."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: np.ndarray


def _positive(name: str, value: object) -> int:
    try:
        n = operator.index(value)
    except TypeError:
        raise InvalidImage(f"image {name} must be an integer, got {type(value).__name__}") from None
    if n <= 0:
        raise InvalidImage(f"image {name} must be > 0, got {n}")
    return n


def _plane(height, width, step, data, bytes_per_pixel: int, align: int) -> tuple[int, int, int, memoryview]:
    """Validated (height, width, step, byte view of data) for one plane of ``bytes_per_pixel``."""
    h, w, s = _positive("height", height), _positive("width", width), _positive("step", step)
    if s < w * bytes_per_pixel:
        raise InvalidImage(f"step {s} is smaller than width {w} x {bytes_per_pixel} bytes per pixel")
    if s % align:
        raise InvalidImage(f"step {s} is not a multiple of the {align}-byte sample size")
    buf = byte_view(data, "image data")
    if buf.nbytes != s * h:
        raise InvalidImage(f"image data has {buf.nbytes} bytes, expected step x height = {s} x {h} = {s * h}")
    return h, w, s, buf


def byte_view(data, what: str) -> memoryview:
    """``data`` (bytes, array.array, a message's sequence<uint8>) as flat bytes without a copy."""
    try:
        buf = memoryview(data)
        if buf.format != "B" or buf.ndim != 1:
            buf = buf.cast("B")
    except (TypeError, ValueError):
        buf = None
    if buf is None or not buf.c_contiguous:
        raise InvalidImage(f"{what} of type {type(data).__name__} is not a contiguous byte buffer")
    return buf


def _encoding(encoding: object, table: dict) -> str:
    if not isinstance(encoding, str) or encoding not in table:
        raise UnsupportedEncoding(encoding, list(table))
    return encoding


def decode_rgb(height, width, encoding, step, data, is_bigendian=0) -> np.ndarray:
    """Read-only (H, W, 3) uint8 RGB view over ``data``; no copy for any supported encoding.

    ``is_bigendian`` is accepted for symmetry and ignored: 8-bit samples have no byte order.
    """
    del is_bigendian
    channels, order = COLOR_ENCODINGS[_encoding(encoding, COLOR_ENCODINGS)]
    h, w, s, buf = _plane(height, width, step, data, channels, 1)
    raw = np.ndarray((h, w, channels), np.uint8, buf, 0, (s, channels, 1))
    if channels == 1:
        rgb = np.broadcast_to(raw, (h, w, 3))
    elif order == (0, 1, 2):
        rgb = raw[:, :, :3]
    else:
        rgb = raw[:, :, 2::-1]
    rgb.flags.writeable = False
    return rgb


def decode_depth(height, width, encoding, step, data, is_bigendian=0) -> np.ndarray:
    """(H, W) float32 depth in metres; a read-only view for native-order 32FC1, else one copy."""
    kind, size, scale = DEPTH_ENCODINGS[_encoding(encoding, DEPTH_ENCODINGS)]
    h, w, s, buf = _plane(height, width, step, data, size, size)
    dtype = np.dtype(f"{'>' if is_bigendian else '<'}{kind}{size}")
    raw = np.ndarray((h, w), dtype, buf, 0, (s, size))
    if kind == "f" and dtype.isnative:
        raw.flags.writeable = False
        return raw
    out = np.multiply(raw, np.float32(scale), dtype=np.float32)
    out.flags.writeable = False
    return out


def _image2d(array: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim != 2 or 0 in a.shape:
        raise ValueError(f"{what} must be a non-empty 2-D array, got shape {a.shape}")
    return a


def encode_mask(mask: np.ndarray) -> EncodedImage:
    """mono8 with 0 = background, 255 = object (any non-zero input pixel is object)."""
    m = _image2d(mask, "mask")
    m = m if m.dtype == np.bool_ else m != 0
    data = np.ascontiguousarray(m).view(np.uint8) * np.uint8(255)
    return EncodedImage(m.shape[0], m.shape[1], "mono8", 0, m.shape[1], data)


def encode_instances(ids: np.ndarray) -> EncodedImage:
    """Little-endian, pixel = track id, 0 = background: mono16 while every id is at most 65535, else 32SC1.

    mono16 rather than 16UC1 because image viewers and RViz show mono16 as a grey
    image while a planner reads the same uint16 values either way. A node that ran
    long enough to hand out larger track ids sends those frames as 32SC1 (int32),
    so no id is ever truncated; a reader takes the dtype from ``encoding``.
    """
    a = _image2d(ids, "instance image")
    if a.dtype == np.uint16:
        top = 0
    elif a.dtype.kind not in "ui" or a.min(initial=0) < 0 or a.max(initial=0) > 2**31 - 1:
        raise ValueError(f"instance image must hold track ids in [0, 2**31 - 1], got dtype {a.dtype}")
    else:
        top = int(a.max(initial=0))
    if top > 65535:
        data = np.ascontiguousarray(a, dtype="<i4").view(np.uint8)
        return EncodedImage(a.shape[0], a.shape[1], "32SC1", 0, 4 * a.shape[1], data)
    data = np.ascontiguousarray(a, dtype="<u2").view(np.uint8)
    return EncodedImage(a.shape[0], a.shape[1], "mono16", 0, 2 * a.shape[1], data)


def encode_rgb(rgb: np.ndarray) -> EncodedImage:
    """rgb8 from an (H, W, 3) uint8 array."""
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3 or 0 in a.shape or a.dtype != np.uint8:
        raise ValueError(f"rgb must be a non-empty (H, W, 3) uint8 array, got {a.shape} {a.dtype}")
    return EncodedImage(a.shape[0], a.shape[1], "rgb8", 0, 3 * a.shape[1], np.ascontiguousarray(a))
