"""Image payload decoding and encoding without ROS: layouts, zero copy, every error path."""

from __future__ import annotations

import array
import subprocess
import sys

import numpy as np
import pytest

from sa2va_i_ros.imaging.image_codec import (
    COLOR_ENCODINGS,
    DEPTH_ENCODINGS,
    ImageDecodeError,
    InvalidImage,
    UnsupportedEncoding,
    decode_depth,
    decode_rgb,
    encode_instances,
    encode_mask,
    encode_rgb,
)

RNG = np.random.default_rng(3)


def pack(pixels: np.ndarray, pad: int = 0, container=bytes) -> tuple[int, bytes]:
    """(step, data) of an (H, W[, C]) array with ``pad`` garbage bytes after every row."""
    h = pixels.shape[0]
    rows = pixels.reshape(h, -1).view(np.uint8)
    garbage = RNG.integers(0, 256, (h, pad), dtype=np.uint8)
    padded = np.concatenate([rows, garbage], axis=1)
    return padded.shape[1], container(padded.tobytes())


def base_of(data) -> np.ndarray:
    return np.frombuffer(data, np.uint8)


def rgb_image(h=5, w=7):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("container", [bytes, bytearray, lambda b: array.array("B", b)])
@pytest.mark.parametrize("pad", [0, 5])
def test_rgb8_is_a_view_honouring_step(pad, container):
    rgb = rgb_image()
    step, data = pack(rgb, pad, container)
    out = decode_rgb(5, 7, "rgb8", step, data)
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgb)
    assert np.shares_memory(out, base_of(data))
    assert not out.flags.writeable


@pytest.mark.parametrize("pad", [0, 3])
def test_bgr8_is_a_channel_reversed_view(pad):
    rgb = rgb_image()
    step, data = pack(np.ascontiguousarray(rgb[:, :, ::-1]), pad, bytearray)
    out = decode_rgb(5, 7, "bgr8", step, data)
    np.testing.assert_array_equal(out, rgb)
    assert np.shares_memory(out, base_of(data))


@pytest.mark.parametrize("encoding,order", [("rgba8", [0, 1, 2]), ("bgra8", [2, 1, 0])])
def test_four_channel_encodings_drop_alpha_without_copy(encoding, order):
    rgb = rgb_image()
    alpha = RNG.integers(0, 256, (5, 7, 1), dtype=np.uint8)
    src = np.concatenate([rgb[:, :, order], alpha], axis=2)
    step, data = pack(src, 4, bytearray)
    out = decode_rgb(5, 7, encoding, step, data)
    np.testing.assert_array_equal(out, rgb)
    assert np.shares_memory(out, base_of(data))


def test_mono8_is_a_read_only_broadcast_view():
    grey = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
    step, data = pack(grey, 1, bytearray)
    out = decode_rgb(5, 7, "mono8", step, data)
    assert out.shape == (5, 7, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], grey)
    assert np.shares_memory(out, base_of(data))
    with pytest.raises(ValueError):
        out[0, 0, 0] = 1


@pytest.mark.parametrize("bigendian", [0, 1])
@pytest.mark.parametrize("pad", [0, 6])
def test_16uc1_millimetres_to_float32_metres(bigendian, pad):
    mm = RNG.integers(0, 65536, (4, 6)).astype(">u2" if bigendian else "<u2")
    mm[0, 0] = 0
    mm[1, 1] = 1500
    step, data = pack(mm, pad)
    out = decode_depth(4, 6, "16UC1", step, data, bigendian)
    assert out.dtype == np.float32 and out.shape == (4, 6)
    np.testing.assert_allclose(out, mm.astype(np.float64) / 1000.0, rtol=1e-6)
    assert out[0, 0] == 0.0 and out[1, 1] == pytest.approx(1.5)


def test_16uc1_byte_order_matters():
    step, data = pack(np.array([[1000]], "<u2"))
    assert decode_depth(1, 1, "16UC1", step, data, 0)[0, 0] == pytest.approx(1.0)
    assert decode_depth(1, 1, "16UC1", step, data, 1)[0, 0] == pytest.approx(0xE803 / 1000.0)


def test_32fc1_native_is_a_view_and_keeps_nan():
    m = RNG.random((4, 6)).astype("<f4")
    m[2, 3] = np.nan
    step, data = pack(m, 8, bytearray)
    out = decode_depth(4, 6, "32FC1", step, data, 0)
    np.testing.assert_array_equal(out, m)
    assert np.shares_memory(out, base_of(data))
    assert not out.flags.writeable


def test_32fc1_big_endian_is_converted():
    m = RNG.random((3, 2)).astype(">f4")
    step, data = pack(m)
    out = decode_depth(3, 2, "32FC1", step, data, 1)
    assert out.dtype == np.float32 and out.dtype.isnative
    np.testing.assert_array_equal(out, m.astype(np.float32))


@pytest.mark.parametrize("encoding",
                         ["yuv422", "bayer_rggb8", "8UC3", "rgb16", "mono16", "RGB8", "", None, b"rgb8"])
def test_unsupported_colour_encodings_are_named(encoding):
    with pytest.raises(UnsupportedEncoding) as err:
        decode_rgb(2, 2, encoding, 6, bytes(12))
    assert repr(encoding) in str(err.value)
    assert all(name in str(err.value) for name in COLOR_ENCODINGS)
    assert isinstance(err.value, ImageDecodeError) and isinstance(err.value, ValueError)


@pytest.mark.parametrize("encoding", ["rgb8", "mono16", "16SC1", "64FC1"])
def test_unsupported_depth_encodings_are_named(encoding):
    with pytest.raises(UnsupportedEncoding) as err:
        decode_depth(2, 2, encoding, 8, bytes(16))
    assert all(name in str(err.value) for name in DEPTH_ENCODINGS)


@pytest.mark.parametrize("fields,match", [
    ((0, 4, "rgb8", 12, b""), "height"),
    ((4, 0, "rgb8", 12, b""), "width"),
    ((-1, 4, "rgb8", 12, bytes(12)), "height"),
    ((2.5, 4, "rgb8", 12, bytes(30)), "integer"),
    ((2, 4, "rgb8", 11, bytes(22)), "step 11 is smaller"),
    ((2, 4, "rgb8", 0, b""), "step"),
    ((2, 4, "rgb8", 12, bytes(23)), "23 bytes"),
    ((2, 4, "rgb8", 12, bytes(25)), "25 bytes"),
    ((2, 4, "rgb8", 12, None), "not a contiguous byte buffer"),
    ((2, 4, "rgb8", 12, [0] * 24), "not a contiguous byte buffer"),
    ((2, 4, "rgb8", 12, "x" * 24), "not a contiguous byte buffer"),
    ((2 ** 32 - 1, 2 ** 32 - 1, "rgb8", 3 * (2 ** 32 - 1), bytes(24)), "bytes, expected"),
])
def test_invalid_colour_images_raise_invalid_image(fields, match):
    with pytest.raises(InvalidImage, match=match):
        decode_rgb(*fields)


def test_non_contiguous_buffer_is_rejected():
    strided = memoryview(bytearray(48))[::2]
    with pytest.raises(InvalidImage, match="contiguous"):
        decode_rgb(2, 4, "rgb8", 12, strided)


def test_typed_buffer_is_read_as_bytes():
    rgb = rgb_image(2, 4)
    words = np.frombuffer(rgb.tobytes(), np.uint32)  # a buffer whose items are not bytes
    np.testing.assert_array_equal(decode_rgb(2, 4, "rgb8", 12, words), rgb)


@pytest.mark.parametrize("fields,match", [
    ((2, 3, "16UC1", 5, bytes(10)), "smaller"),
    ((2, 3, "16UC1", 7, bytes(14)), "multiple of the 2-byte"),
    ((2, 3, "32FC1", 14, bytes(28)), "multiple of the 4-byte"),
    ((2, 3, "32FC1", 12, bytes(20)), "20 bytes"),
])
def test_invalid_depth_images_raise_invalid_image(fields, match):
    with pytest.raises(InvalidImage, match=match):
        decode_depth(*fields)


def test_hostile_fields_never_crash():
    """Random field combinations: either a correctly shaped array or an ImageDecodeError."""
    encodings = [*COLOR_ENCODINGS, *DEPTH_ENCODINGS, "yuv422", "", "rgb"]
    for _ in range(3000):
        h, w = (int(x) for x in RNG.integers(-2, 6, 2))
        step = int(RNG.integers(-2, 30))
        data = bytes(int(RNG.integers(0, 200)))
        enc = encodings[RNG.integers(len(encodings))]
        decode = decode_depth if enc in DEPTH_ENCODINGS else decode_rgb
        try:
            out = decode(h, w, enc, step, data, int(RNG.integers(0, 2)))
        except ImageDecodeError:
            continue
        assert out.shape[:2] == (h, w)


def test_encode_mask_is_mono8_0_255():
    mask = np.array([[0, 1, 7], [0, 0, 255]], np.uint8)
    enc = encode_mask(mask)
    assert (enc.height, enc.width, enc.encoding, enc.step, enc.is_bigendian) == (2, 3, "mono8", 3, 0)
    assert bytes(enc.data) == bytes([0, 255, 255, 0, 0, 255])
    assert bytes(encode_mask(mask.astype(bool)).data) == bytes(enc.data)


def test_encode_instances_is_little_endian_mono16():
    ids = np.array([[0, 1], [258, 65535]], np.uint16)
    enc = encode_instances(ids)
    assert (enc.encoding, enc.step, enc.is_bigendian) == ("mono16", 4, 0)
    assert bytes(enc.data) == bytes([0, 0, 1, 0, 2, 1, 255, 255])
    assert bytes(encode_instances(ids.astype(np.int64)).data) == bytes(enc.data)
    with pytest.raises(ValueError):
        encode_instances(np.array([[-1]]))
    with pytest.raises(ValueError):
        encode_instances(np.array([[2**31]]))


def test_encode_instances_above_65535_is_little_endian_32sc1():
    ids = np.array([[0, 3], [70_000, 2**31 - 1]], np.int64)
    enc = encode_instances(ids)
    assert (enc.encoding, enc.step, enc.is_bigendian) == ("32SC1", 8, 0)
    np.testing.assert_array_equal(np.frombuffer(bytes(enc.data), "<i4").reshape(2, 2), ids)


def test_encode_rgb_round_trips_through_decode():
    rgb = rgb_image(6, 9)[:, ::-1]  # not contiguous
    enc = encode_rgb(rgb)
    assert (enc.encoding, enc.step) == ("rgb8", 27)
    np.testing.assert_array_equal(decode_rgb(enc.height, enc.width, enc.encoding, enc.step, enc.data), rgb)


@pytest.mark.parametrize("bad", [np.zeros((0, 3), bool), np.zeros((2, 2, 2), bool)])
def test_encode_rejects_bad_shapes(bad):
    with pytest.raises(ValueError):
        encode_mask(bad)
    with pytest.raises(ValueError):
        encode_rgb(np.zeros((2, 2), np.uint8))


def test_core_modules_import_without_ros():
    """image_codec, frame_buffer and geometry must load with every ROS package unavailable."""
    code = (
        "import sys\n"
        "for name in ('rclpy', 'sensor_msgs', 'std_msgs', 'geometry_msgs', 'builtin_interfaces',\n"
        "             'rosidl_runtime_py', 'sa2va_i_ros.msg'):\n"
        "    sys.modules[name] = None\n"
        "import sa2va_i_ros.imaging.image_codec, sa2va_i_ros.runtime.frame_buffer, sa2va_i_ros.imaging.geometry\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
