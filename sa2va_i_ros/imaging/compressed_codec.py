"""sensor_msgs/CompressedImage payloads (image_transport ``compressed`` and ``compressedDepth``), without ROS.

Works on the two plain fields of a CompressedImage, ``format`` and ``data``, as
image_transport_plugins writes them:

* ``compressed``: ``"<encoding>; jpeg compressed <target>"`` or ``"<encoding>;
  png compressed <target>"``, where ``encoding`` is the camera's encoding and
  ``target`` what the codec was handed (``bgr8`` for colour, ``mono8`` or empty
  for grey). The codec writes true colours whatever the target; a colour image
  whose target is not ``bgr...`` comes from the old plugin, which handed the
  codec its RGB bytes as if they were BGR, so the red and blue channels are
  swapped back, as the plugin's own subscriber does. A format without ``;`` is
  the old plugin's too: the codec is read from the data.
* ``compressedDepth``: ``"<16UC1|32FC1>; compressedDepth png"`` (``compressedDepth``
  alone means png), and the data is a 12-byte config header, little-endian
  ``int32 format`` (0: inverse depth) and ``float32 depthParam[2]``, followed by
  a 16-bit grey PNG. 16UC1 is millimetres as sent (the publisher set depths
  beyond its ``depth_max`` to 0; the header's parameters are left unset).
  32FC1 is quantised inverse depth, ``q = uint16(A / d + B)`` with
  ``A = z0 (z0 + 1)`` and ``B = 1 - A / depth_max`` (the plugin's defaults
  z0 = 100, depth_max = 10 m), decoded as ``d = A / (q - B)``, and ``q = 0``
  as NaN (no depth). ``rvl`` is not read (an error names it).

JPEG is decoded by simplejpeg (libjpeg-turbo; about 1.4x faster than Pillow's
decoder on the same data, see docs/DECISIONS.md and the ``codec.jpeg_*``
figures of ``make bench``), PNG by Pillow. Every decoded array is a new,
read-only array owned by the caller. Anything wrong (truncated data, a format
string that does not match the data, a header that does not fit) raises an
``ImageDecodeError`` subclass naming the problem: the node logs it and drops
that one frame.
"""

from __future__ import annotations

import io
import math
import struct
from typing import NamedTuple

import numpy as np
import simplejpeg
from PIL import Image

from sa2va_i_ros.imaging.image_codec import (
    COLOR_ENCODINGS,
    ImageDecodeError,
    InvalidImage,
    UnsupportedEncoding,
    byte_view,
)

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PNG_END = b"IEND\xaeB`\x82"  # the last chunk's type and CRC: a PNG without it was cut short
DEPTH_HEADER = struct.Struct("<iff")  # compressionFormat format; float depthParam[2]
INV_DEPTH = 0  # the only compression format the plugin writes
DEPTH_ENCODINGS = ("16UC1", "32FC1")
MAX_PIXELS = 8192 * 8192  # a header claiming more is refused before any memory is allocated
# the plugin's defaults (compressedDepth parameters depth_max and depth_quantization)
DEPTH_MAX_M = 10.0
DEPTH_QUANTIZATION = 100.0


class CompressedFormat(NamedTuple):
    """A parsed ``format`` string: the camera's encoding, the codec and the codec's input (``target``)."""

    encoding: str  # "" for the old plugin's format without ";"
    codec: str  # "jpeg" or "png"
    target: str  # "bgr8", "mono8", "rgb8", ... or ""


def _codec_of(data) -> str:
    head = bytes(memoryview(data)[:8])
    if head.startswith(JPEG_MAGIC):
        return "jpeg"
    if head.startswith(PNG_MAGIC):
        return "png"
    return "unknown"


def parse_format(fmt: object) -> CompressedFormat:
    """``"rgb8; jpeg compressed bgr8"`` -> ("rgb8", "jpeg", "bgr8"); UnsupportedEncoding when it is not that."""
    if not isinstance(fmt, str):
        raise UnsupportedEncoding(fmt, ["'<encoding>; jpeg compressed <target>'", "'<encoding>; png compressed "
                                        "<target>'"])
    if ";" not in fmt:
        return CompressedFormat("", "", "")
    encoding, _, tail = fmt.partition(";")
    encoding, words = encoding.strip(), tail.split()
    if len(words) >= 2 and words[0] in ("jpeg", "png") and words[1] == "compressed" and len(words) <= 3:
        return CompressedFormat(encoding, words[0], words[2] if len(words) == 3 else "")
    raise UnsupportedEncoding(fmt, ["'<encoding>; jpeg compressed <target>'",
                                    "'<encoding>; png compressed <target>' (image_transport compressed)"])


def _byte_view(data) -> memoryview:
    buf = byte_view(data, "compressed data")
    if not buf.nbytes:
        raise InvalidImage("compressed image has no data")
    return buf


def _check_pixels(height: int, width: int, what: str) -> None:
    if height <= 0 or width <= 0 or height * width > MAX_PIXELS:
        raise InvalidImage(f"{what} claims {width}x{height} pixels; at most {MAX_PIXELS} are accepted")


def _decode_jpeg(buf: memoryview) -> np.ndarray:
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(buf)
    except ValueError as exc:
        raise InvalidImage(f"JPEG header unreadable: {exc}") from None
    _check_pixels(height, width, "the JPEG header")
    try:
        if colorspace == "Gray":
            grey = simplejpeg.decode_jpeg(buf, colorspace="GRAY", strict=True)[:, :, 0]
            return np.repeat(grey[:, :, None], 3, axis=2)
        return simplejpeg.decode_jpeg(buf, colorspace="RGB", strict=True)
    except ValueError as exc:  # strict: a truncated or corrupt stream is an error, not a grey tail
        raise InvalidImage(f"JPEG data is corrupt or truncated ({buf.nbytes} bytes): {exc}") from None


def _open_png(buf: memoryview) -> Image.Image:
    if bytes(buf[-len(PNG_END):]) != PNG_END:
        raise InvalidImage(f"PNG data is corrupt or truncated ({buf.nbytes} bytes): it does not end with IEND")
    try:
        img = Image.open(io.BytesIO(buf), formats=["PNG"])
        _check_pixels(img.height, img.width, "the PNG header")
        img.load()
    except ImageDecodeError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidImage(f"PNG data is corrupt or truncated ({buf.nbytes} bytes): {exc}") from None
    return img


def _png_rgb(buf: memoryview) -> np.ndarray:
    img = _open_png(buf)
    if img.mode not in ("RGB", "L", "RGBA", "P", "LA"):
        raise InvalidImage(f"PNG of mode {img.mode} is not an 8-bit colour or grey image")
    return np.asarray(img.convert("RGB"))


def decode_compressed_rgb(fmt: object, data) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a ``compressed`` CompressedImage; a new read-only array."""
    parsed = parse_format(fmt)
    buf = _byte_view(data)
    found = _codec_of(buf)
    if parsed.encoding and parsed.encoding not in COLOR_ENCODINGS:
        raise UnsupportedEncoding(parsed.encoding, list(COLOR_ENCODINGS))
    if parsed.codec and found != parsed.codec:
        what = "neither JPEG nor PNG" if found == "unknown" else f"{found.upper()}"
        raise InvalidImage(f"format {fmt!r} says {parsed.codec} but the data is {what}")
    if found == "unknown":
        raise InvalidImage(f"compressed data is neither JPEG nor PNG (starts with {bytes(buf[:4]).hex()})")
    rgb = _decode_jpeg(buf) if found == "jpeg" else _png_rgb(buf)
    colour = parsed.encoding != "" and parsed.encoding != "mono8"
    if colour and not parsed.target.startswith("bgr"):
        rgb = np.ascontiguousarray(rgb[:, :, ::-1])  # the old plugin's swapped channels
    rgb.flags.writeable = False
    return rgb


def parse_depth_format(fmt: object) -> str:
    """The depth encoding of a ``compressedDepth`` format string; UnsupportedEncoding otherwise."""
    supported = [f"'{e}; compressedDepth png'" for e in DEPTH_ENCODINGS]
    if not isinstance(fmt, str):
        raise UnsupportedEncoding(fmt, supported)
    encoding, sep, tail = fmt.partition(";")
    encoding, words = encoding.strip(), tail.split()
    if sep and words[:1] == ["compressedDepth"] and words[1:] == ["rvl"]:
        raise UnsupportedEncoding(fmt, supported + ["(rvl is not read: set the publisher's format to png)"])
    if sep and words not in (["compressedDepth"], ["compressedDepth", "png"]):
        raise UnsupportedEncoding(fmt, supported)
    if encoding not in DEPTH_ENCODINGS:
        raise UnsupportedEncoding(fmt, supported)
    return encoding


def decode_compressed_depth(fmt: object, data) -> np.ndarray:
    """(H, W) float32 metres of a ``compressedDepth`` CompressedImage (0 or NaN: no depth); read-only."""
    encoding = parse_depth_format(fmt)
    buf = _byte_view(data)
    if buf.nbytes <= DEPTH_HEADER.size:
        raise InvalidImage(f"compressedDepth data has {buf.nbytes} bytes: too short for the "
                           f"{DEPTH_HEADER.size}-byte config header and an image")
    kind, quant_a, quant_b = DEPTH_HEADER.unpack_from(buf)
    if bytes(buf[:8]) == PNG_MAGIC:
        raise InvalidImage("compressedDepth data starts with a PNG signature: the 12-byte config header is "
                           "missing (published by the 'compressed' plugin rather than 'compressedDepth'?)")
    if kind != INV_DEPTH:
        raise InvalidImage(f"compressedDepth header names compression format {kind}; the plugin writes "
                           f"{INV_DEPTH} (inverse depth)")
    png = buf[DEPTH_HEADER.size:]
    if _codec_of(png) != "png":
        raise InvalidImage("compressedDepth data after the 12-byte header is not a PNG")
    img = _open_png(png)
    if img.mode not in ("I;16", "I;16B", "I"):
        raise InvalidImage(f"compressedDepth PNG is of mode {img.mode}, expected 16-bit grey")
    q = np.asarray(img)
    if q.dtype != np.uint16:
        if q.min(initial=0) < 0 or q.max(initial=0) > 65535:
            raise InvalidImage("compressedDepth PNG holds values outside 16 bits")
        q = q.astype(np.uint16)
    if encoding == "16UC1":
        out = np.multiply(q, np.float32(0.001), dtype=np.float32)
    else:
        if not (math.isfinite(quant_a) and math.isfinite(quant_b) and quant_a > 0):
            raise InvalidImage(f"compressedDepth 32FC1 header has unusable quantisation parameters "
                               f"A={quant_a}, B={quant_b}")
        with np.errstate(divide="ignore"):
            out = np.float32(quant_a) / (q.astype(np.float32) - np.float32(quant_b))
        out[q == 0] = np.nan
    out.flags.writeable = False
    return out


# -- encoders: what the plugins write (synthetic bags, tests) --------------------------------------
def encode_jpeg(rgb: np.ndarray, quality: int = 95, encoding: str = "rgb8") -> tuple[str, bytes]:
    """(format, data) as image_transport's ``compressed`` publisher writes an ``encoding`` image as JPEG."""
    a = np.ascontiguousarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise ValueError(f"rgb must be an (H, W, 3) uint8 array, got {a.shape} {a.dtype}")
    return f"{encoding}; jpeg compressed bgr8", simplejpeg.encode_jpeg(a, quality=quality, colorspace="RGB")


def encode_png(rgb: np.ndarray, encoding: str = "rgb8") -> tuple[str, bytes]:
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(out, "PNG", compress_level=3)
    return f"{encoding}; png compressed bgr8", out.getvalue()


def _png16(values: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(values, dtype=np.uint16)).save(out, "PNG", compress_level=3)
    return out.getvalue()


def encode_depth_16uc1(depth_mm: np.ndarray, depth_max_m: float = DEPTH_MAX_M) -> tuple[str, bytes]:
    """(format, data) as ``compressedDepth`` writes a 16UC1 image: depths beyond depth_max become 0."""
    mm = np.array(depth_mm, dtype=np.uint16)
    mm[mm > np.uint16(int(depth_max_m * 1000.0))] = 0
    return "16UC1; compressedDepth png", DEPTH_HEADER.pack(INV_DEPTH, 0.0, 0.0) + _png16(mm)


def encode_depth_32fc1(depth_m: np.ndarray, depth_max_m: float = DEPTH_MAX_M,
                       quantization: float = DEPTH_QUANTIZATION) -> tuple[str, bytes]:
    """(format, data) as ``compressedDepth`` writes a 32FC1 image: quantised inverse depth."""
    d = np.asarray(depth_m, dtype=np.float32)
    quant_a = np.float32(quantization) * (np.float32(quantization) + np.float32(1.0))
    quant_b = np.float32(1.0) - quant_a / np.float32(depth_max_m)
    near = d < np.float32(depth_max_m)  # NaN compares False: no depth
    q = np.zeros(d.shape, np.uint16)
    with np.errstate(divide="ignore", invalid="ignore"):
        q[near] = np.clip(quant_a / d[near] + quant_b, 0, 65535).astype(np.uint16)  # C++: truncation
    return "32FC1; compressedDepth png", DEPTH_HEADER.pack(INV_DEPTH, float(quant_a), float(quant_b)) + _png16(q)
