"""CompressedImage payloads without ROS: image_transport's compressed and compressedDepth, and every bad case.

References are independent of the code under test: Pillow decodes the JPEGs
and PNGs we check against, and the compressedDepth numbers are worked out by
hand from image_transport_plugins' formula (``q = uint16(A / d + B)``,
``A = z0 (z0 + 1)``, ``B = 1 - A / depth_max``; defaults z0 = 100, depth_max =
10 m, so A = 10100, B = -1009) and its 12-byte header layout.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from sa2va_i_ros.imaging.compressed_codec import (
    decode_compressed_depth,
    decode_compressed_rgb,
    encode_depth_16uc1,
    encode_depth_32fc1,
    encode_jpeg,
    encode_png,
    parse_format,
)
from sa2va_i_ros.imaging.image_codec import ImageDecodeError, InvalidImage, UnsupportedEncoding

RNG = np.random.default_rng(11)


def smooth_rgb(h=48, w=64) -> np.ndarray:
    """A camera-like image (gradients + mild noise): JPEG keeps it close."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 / w, y * 255 / h, (x + y) * 100 / (w + h) + 60], -1)
    return np.clip(img + RNG.normal(0, 2, img.shape), 0, 255).astype(np.uint8)


def pillow_bytes(img: np.ndarray, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    Image.fromarray(img).save(out, fmt, **kw)
    return out.getvalue()


def png16(values) -> bytes:
    return pillow_bytes(np.asarray(values, np.uint16), "PNG")


# -- compressed (colour) -------------------------------------------------------------------------
@pytest.mark.parametrize("fmt,expected", [
    ("rgb8; jpeg compressed bgr8", ("rgb8", "jpeg", "bgr8")),
    ("bgr8; png compressed bgr8", ("bgr8", "png", "bgr8")),
    ("mono8; jpeg compressed mono8", ("mono8", "jpeg", "mono8")),
    ("mono8; png compressed ", ("mono8", "png", "")),  # the plugin leaves the target empty for grey PNG
    ("jpeg", ("", "", "")),  # the old plugin's format: no ';', the codec comes from the data
])
def test_format_strings_of_the_plugin_parse(fmt, expected):
    assert tuple(parse_format(fmt)) == expected


@pytest.mark.parametrize("fmt", ["rgb8; h264", "rgb8; tiff compressed bgr8", "rgb8; jpeg", "rgb8;", None, 3,
                                 "rgb8; jpeg compressed bgr8 extra"])
def test_unknown_format_strings_are_named(fmt):
    with pytest.raises(UnsupportedEncoding) as err:
        decode_compressed_rgb(fmt, pillow_bytes(smooth_rgb(), "JPEG"))
    assert repr(fmt) in str(err.value) and "jpeg compressed" in str(err.value)


def test_jpeg_decodes_like_an_independent_decoder():
    rgb = smooth_rgb()
    data = pillow_bytes(rgb, "JPEG", quality=95)
    out = decode_compressed_rgb("rgb8; jpeg compressed bgr8", data)
    reference = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8 and not out.flags.writeable
    assert np.abs(out.astype(int) - reference).max() <= 1
    assert np.abs(out.astype(int) - rgb).mean() < 3  # true colours (a channel swap would be ~60)


def test_bgr_camera_jpeg_is_true_colour_too():
    """The plugin hands the codec BGR whatever the camera's encoding: the file holds true colours."""
    rgb = smooth_rgb()
    out = decode_compressed_rgb("bgr8; jpeg compressed bgr8", pillow_bytes(rgb, "JPEG", quality=95))
    assert np.abs(out.astype(int) - rgb).mean() < 3


@pytest.mark.parametrize("fmt", ["rgb8; png compressed rgb8", "bgr8; jpeg compressed rgb8"])
def test_old_plugin_formats_swap_red_and_blue_back(fmt):
    rgb = smooth_rgb()
    swapped = np.ascontiguousarray(rgb[:, :, ::-1])  # what the old plugin stored
    kind = "PNG" if "png" in fmt else "JPEG"
    out = decode_compressed_rgb(fmt, pillow_bytes(swapped, kind, **({"quality": 95} if kind == "JPEG" else {})))
    assert np.abs(out.astype(int) - rgb).mean() < 3


def test_png_is_lossless_and_grey_is_broadcast():
    rgb = smooth_rgb()
    np.testing.assert_array_equal(decode_compressed_rgb("rgb8; png compressed bgr8", pillow_bytes(rgb, "PNG")), rgb)
    grey = rgb[:, :, 0].copy()
    out = decode_compressed_rgb("mono8; png compressed ", pillow_bytes(grey, "PNG"))
    assert out.shape == (48, 64, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], grey)
    out = decode_compressed_rgb("mono8; jpeg compressed mono8", pillow_bytes(grey, "JPEG", quality=95))
    assert out.shape == (48, 64, 3) and np.abs(out[:, :, 1].astype(int) - grey).mean() < 3


def test_old_format_without_semicolon_reads_the_codec_from_the_data():
    rgb = smooth_rgb()
    np.testing.assert_array_equal(decode_compressed_rgb("png", pillow_bytes(rgb, "PNG")), rgb)


def test_our_encoders_write_what_the_plugin_writes():
    rgb = smooth_rgb()
    fmt, data = encode_jpeg(rgb, quality=95)
    assert fmt == "rgb8; jpeg compressed bgr8" and data[:3] == b"\xff\xd8\xff"
    assert np.abs(np.asarray(Image.open(io.BytesIO(data))).astype(int) - rgb).mean() < 3
    fmt, data = encode_png(rgb)
    assert fmt == "rgb8; png compressed bgr8"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), rgb)


def test_truncated_jpeg_is_an_error_not_a_grey_tail():
    data = pillow_bytes(smooth_rgb(), "JPEG", quality=95)
    for cut in (len(data) // 2, len(data) - 2, 20):
        with pytest.raises(InvalidImage, match="corrupt or truncated|header unreadable"):
            decode_compressed_rgb("rgb8; jpeg compressed bgr8", data[:cut])


def test_truncated_png_is_an_error():
    data = pillow_bytes(smooth_rgb(), "PNG")
    with pytest.raises(InvalidImage, match="PNG data is corrupt or truncated"):
        decode_compressed_rgb("rgb8; png compressed bgr8", data[: len(data) // 2])


@pytest.mark.parametrize("fmt,kind,match", [
    ("rgb8; jpeg compressed bgr8", "PNG", "says jpeg but the data is PNG"),
    ("rgb8; png compressed bgr8", "JPEG", "says png but the data is JPEG"),
])
def test_format_string_that_contradicts_the_data(fmt, kind, match):
    with pytest.raises(InvalidImage, match=match):
        decode_compressed_rgb(fmt, pillow_bytes(smooth_rgb(), kind))


@pytest.mark.parametrize("data,match", [
    (b"", "no data"),
    (b"\x00" * 64, "says jpeg but the data is neither JPEG nor PNG"),
    (None, "not a contiguous byte buffer"),
    ("text", "not a contiguous byte buffer"),
])
def test_empty_or_foreign_data(data, match):
    with pytest.raises(InvalidImage, match=match):
        decode_compressed_rgb("rgb8; jpeg compressed bgr8", data)


def test_unsupported_camera_encoding_is_named():
    with pytest.raises(UnsupportedEncoding, match="'rgb16'.*rgb8"):
        decode_compressed_rgb("rgb16; png compressed bgr16", pillow_bytes(smooth_rgb(), "PNG"))


def test_jpeg_header_claiming_a_huge_image_is_refused_before_decoding():
    data = bytearray(pillow_bytes(smooth_rgb(16, 16), "JPEG"))
    sof = next(i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC2))
    data[sof + 5:sof + 9] = struct.pack(">HH", 60000, 60000)  # height, width of the frame header
    with pytest.raises(InvalidImage, match="60000x60000"):
        decode_compressed_rgb("rgb8; jpeg compressed bgr8", bytes(data))


def test_decoded_frames_take_array_array_payloads():
    """rclpy delivers uint8[] as array.array('B')."""
    import array

    rgb = smooth_rgb()
    out = decode_compressed_rgb("rgb8; png compressed bgr8", array.array("B", pillow_bytes(rgb, "PNG")))
    np.testing.assert_array_equal(out, rgb)


# -- compressedDepth ---------------------------------------------------------------------------------
def test_16uc1_round_trip_is_exact_and_header_as_the_plugin_writes():
    mm = RNG.integers(0, 9000, (30, 40)).astype(np.uint16)
    mm[0, 0], mm[0, 1] = 0, 12000  # 12 m is beyond depth_max 10 m: the publisher sends 0
    fmt, data = encode_depth_16uc1(mm)
    assert fmt == "16UC1; compressedDepth png"
    assert data[:4] == b"\x00\x00\x00\x00" and data[12:20] == b"\x89PNG\r\n\x1a\n"
    on_disk = np.asarray(Image.open(io.BytesIO(data[12:])))  # an independent PNG reader
    assert on_disk[0, 1] == 0 and on_disk[5, 5] == mm[5, 5]
    out = decode_compressed_depth(fmt, data)
    expected = mm.astype(np.float64) / 1000.0
    expected[0, 1] = 0.0
    assert out.dtype == np.float32 and not out.flags.writeable
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_16uc1_ignores_the_unset_quantisation_parameters():
    """The plugin never sets depthParam for 16-bit images: whatever bytes are there must not matter."""
    header = struct.pack("<i", 0) + b"\xde\xad\xbe\xef\xff\xff\xff\x7f"
    out = decode_compressed_depth("16UC1; compressedDepth png", header + png16([[1500, 0]]))
    np.testing.assert_allclose(out, [[1.5, 0.0]])


def test_32fc1_quantisation_pinned_to_the_plugin_formula():
    depth = np.array([[0.5, 1.0, 2.0, 3.0, np.nan, 10.0, 12.0]], np.float32)
    fmt, data = encode_depth_32fc1(depth)
    assert fmt == "32FC1; compressedDepth png"
    # header: INV_DEPTH (0), A = 100 * 101 = 10100, B = 1 - 10100 / 10 = -1009, little-endian
    assert data[:12] == struct.pack("<iff", 0, 10100.0, -1009.0)
    q = np.asarray(Image.open(io.BytesIO(data[12:]))).astype(int)
    # by hand: 10100/d - 1009, truncated; NaN and d >= depth_max give 0
    assert q.tolist() == [[19191, 9091, 4041, 2357, 0, 0, 0]]
    out = decode_compressed_depth(fmt, data)
    np.testing.assert_allclose(out[0, :4], [0.5, 1.0, 2.0, 10100 / (2357 + 1009)], rtol=1e-6)
    assert np.isnan(out[0, 4:]).all()


def test_32fc1_from_a_hand_made_header():
    """Decoding follows the header's own A and B (another publisher's depth_quantization, depth_max)."""
    quant_a, quant_b = 20.0 * 21.0, 1.0 - 420.0 / 5.0
    data = struct.pack("<iff", 0, quant_a, quant_b) + png16([[0, 100, 500]])
    out = decode_compressed_depth("32FC1; compressedDepth png", data)
    assert np.isnan(out[0, 0])
    np.testing.assert_allclose(out[0, 1:], [420.0 / (100 - quant_b), 420.0 / (500 - quant_b)], rtol=1e-6)


@pytest.mark.parametrize("fmt", ["16UC1; compressedDepth", "16UC1"])  # the plugin reads both as png
def test_short_depth_formats_mean_png(fmt):
    _, data = encode_depth_16uc1(np.array([[1000]], np.uint16))
    assert decode_compressed_depth(fmt, data)[0, 0] == pytest.approx(1.0)


@pytest.mark.parametrize("fmt,match", [
    ("16UC1; compressedDepth rvl", "rvl is not read"),
    ("mono8; compressedDepth png", "16UC1; compressedDepth png"),
    ("16UC1; jpeg compressed bgr8", "compressedDepth png"),
    ("", "compressedDepth png"),
    (None, "compressedDepth png"),
])
def test_unsupported_depth_formats_are_named(fmt, match):
    _, data = encode_depth_16uc1(np.array([[1000]], np.uint16))
    with pytest.raises(UnsupportedEncoding, match=match):
        decode_compressed_depth(fmt, data)


def test_depth_header_mismatches_are_clear_errors():
    fmt = "16UC1; compressedDepth png"
    _, good = encode_depth_16uc1(np.array([[1000, 2000]], np.uint16))
    with pytest.raises(InvalidImage, match="too short for the 12-byte config header"):
        decode_compressed_depth(fmt, good[:12])
    with pytest.raises(InvalidImage, match="header is missing"):
        decode_compressed_depth(fmt, png16([[1000, 2000]]))  # a plain PNG, no header
    with pytest.raises(InvalidImage, match="compression format 7"):
        decode_compressed_depth(fmt, struct.pack("<iff", 7, 0, 0) + good[12:])
    with pytest.raises(InvalidImage, match="after the 12-byte header is not a PNG"):
        decode_compressed_depth(fmt, good[:12] + b"\xff\xd8\xff" + good[15:])
    with pytest.raises(InvalidImage, match="corrupt or truncated"):
        decode_compressed_depth(fmt, good[: len(good) - 20])
    with pytest.raises(InvalidImage, match="mode L, expected 16-bit grey"):
        decode_compressed_depth(fmt, good[:12] + pillow_bytes(np.zeros((2, 2), np.uint8), "PNG"))
    for a, b in ((float("nan"), 0.0), (0.0, 1.0), (float("inf"), 0.0)):
        with pytest.raises(InvalidImage, match="unusable quantisation"):
            decode_compressed_depth("32FC1; compressedDepth png", struct.pack("<iff", 0, a, b) + good[12:])


def test_hostile_payloads_never_escape_as_other_errors():
    """Random cuts and byte flips of valid payloads: a correct array or an ImageDecodeError, nothing else."""
    rgb = smooth_rgb(24, 32)
    cases = [("rgb8; jpeg compressed bgr8", pillow_bytes(rgb, "JPEG"), decode_compressed_rgb),
             ("rgb8; png compressed bgr8", pillow_bytes(rgb, "PNG"), decode_compressed_rgb),
             (*encode_depth_16uc1(RNG.integers(0, 5000, (24, 32)).astype(np.uint16)), decode_compressed_depth),
             (*encode_depth_32fc1(RNG.uniform(0.3, 4, (24, 32)).astype(np.float32)), decode_compressed_depth)]
    for fmt, data, decode in cases:
        for _ in range(150):
            mutated = bytearray(data[: int(RNG.integers(0, len(data) + 1))])
            for _ in range(int(RNG.integers(0, 4))):
                if mutated:
                    mutated[int(RNG.integers(len(mutated)))] = int(RNG.integers(256))
            try:
                out = decode(fmt, bytes(mutated))
            except ImageDecodeError:
                continue
            assert out.shape[:2] == (24, 32)
