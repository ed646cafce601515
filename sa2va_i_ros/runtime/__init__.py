"""The real-time runtime without ROS: buffer, gates, clock, session, catch-up, re-grounding, the worker."""
