"""Sa2VA / Sa2VA-i checkpoints in the official Hugging Face layout, read strictly into our modules.

``config``: what config.json says and whether we support it; ``keys``: the
renames from the official tensor names to our modules; ``load``: resolving a
directory or hub id and strict safetensors loading; ``build``: the one load path.
Random-weight checkpoints in this layout (tests, the demo, the bench) are made by
``sa2va_i_ros.testing`` (``tiny_sa2va``, ``answer_rig``, ``official_layout``).
"""
