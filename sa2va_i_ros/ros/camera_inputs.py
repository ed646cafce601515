"""Camera subscriptions by transport: raw ``Image``, image_transport ``compressed``/``compressedDepth``, or both.

image_transport publishes a camera's transports under the base topic:
``<image>/compressed`` (JPEG or PNG) and ``<depth>/compressedDepth``. The node
subscribes to the same names: the base names ``image`` and ``depth`` are
resolved first (remaps and namespace apply to them, as with image_transport's
own subscribers), then the transport's suffix is added. Each subscription hands
its callback the message and the function that decodes it, so the node has
one code path per input whatever the transport.
"""

from __future__ import annotations

from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data, qos_profile_system_default
from sensor_msgs.msg import CompressedImage, Image

from sa2va_i_ros.ros import conversions as conv

TRANSPORTS = ("raw", "compressed", "both")
SUFFIX = {"image": "/compressed", "depth": "/compressedDepth"}


def camera_qos(name: str, depth: int) -> QoSProfile:
    """The camera subscriptions' QoS (parameter ``image_qos``), with the queue depth ``image_queue_depth``."""
    if name == "reliable":
        return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)
    profile = {"sensor_data": qos_profile_sensor_data, "system_default": qos_profile_system_default}[name]
    return QoSProfile(depth=depth, reliability=profile.reliability, durability=profile.durability,
                      history=profile.history)


def transport_topics(node, base: str, transport: str, camera: str = "") -> list[tuple[type, str]]:
    """(message type, topic) pairs the node subscribes to for ``base`` ("image" or "depth") of ``camera``
    (a named camera's topics are ``<camera>/image``, ...)."""
    if transport not in TRANSPORTS:
        raise ValueError(f"image_transport must be one of {', '.join(TRANSPORTS)}; got {transport!r}")
    out, topic = [], f"{camera}/{base}" if camera else base
    if transport in ("raw", "both"):
        out.append((Image, topic))
    if transport in ("compressed", "both"):
        out.append((CompressedImage, node.resolve_topic_name(topic) + SUFFIX[base]))
    return out


def camera_subscriptions(node, transport: str, on_image, profile, group, camera: str = "") -> list:
    """``on_image(msg, decode)`` for every colour message; ``decode(msg)`` gives (H, W, 3) RGB."""
    decoders = {Image: conv.image_to_rgb, CompressedImage: conv.compressed_to_rgb}
    return [node.create_subscription(kind, topic, lambda msg, d=decoders[kind]: on_image(msg, d), profile,
                                     callback_group=group)
            for kind, topic in transport_topics(node, "image", transport, camera)]


def depth_subscriptions(node, transport: str, on_depth, profile, group, camera: str = "") -> list:
    """``on_depth(msg)`` for every depth message (raw Image or compressedDepth; ``conv.any_to_depth`` reads both)."""
    return [node.create_subscription(kind, topic, on_depth, profile, callback_group=group)
            for kind, topic in transport_topics(node, "depth", transport, camera)]
