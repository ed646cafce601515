"""Images without ROS types: raw and compressed encodings to numpy, mask geometry, overlays."""
