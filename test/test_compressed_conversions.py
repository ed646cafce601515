"""CompressedImage messages as rclpy delivers them (uint8[] as array.array) decode through the ROS layer."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage
from sensor_msgs.msg import CompressedImage, Image

from sa2va_i_ros.imaging.compressed_codec import encode_depth_16uc1
from sa2va_i_ros.imaging.image_codec import ImageDecodeError
from sa2va_i_ros.ros import conversions as conv

RGB = np.random.default_rng(2).integers(0, 256, (12, 16, 3), dtype=np.uint8)


def png_msg(fmt="rgb8; png compressed bgr8") -> CompressedImage:
    out = io.BytesIO()
    PILImage.fromarray(RGB).save(out, "PNG")
    msg = CompressedImage(format=fmt, data=out.getvalue())
    assert msg.data.typecode == "B"  # rclpy keeps uint8[] as array.array
    return msg


def test_compressed_rgb_from_a_message():
    np.testing.assert_array_equal(conv.compressed_to_rgb(png_msg()), RGB)


def test_compressed_depth_and_raw_depth_through_one_call():
    mm = np.array([[0, 1000], [2500, 9000]], np.uint16)
    fmt, data = encode_depth_16uc1(mm)
    cmsg = CompressedImage(format=fmt, data=data)
    raw = Image(height=2, width=2, encoding="16UC1", step=4, data=mm.astype("<u2").tobytes())
    np.testing.assert_allclose(conv.any_to_depth(cmsg), mm / 1000.0, rtol=1e-6)
    np.testing.assert_array_equal(conv.any_to_depth(cmsg), conv.any_to_depth(raw))


def test_bad_compressed_messages_raise_decode_errors():
    msg = png_msg()
    msg.data = msg.data[: len(msg.data) // 2]
    with pytest.raises(ImageDecodeError, match="truncated"):
        conv.compressed_to_rgb(msg)
    with pytest.raises(ImageDecodeError, match="h264"):
        conv.compressed_to_rgb(png_msg("rgb8; h264"))
    with pytest.raises(ImageDecodeError, match="header is missing"):
        conv.compressed_to_depth(CompressedImage(format="16UC1; compressedDepth png", data=png_msg().data))
