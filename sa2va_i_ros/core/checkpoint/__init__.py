"""Sa2VA / Sa2VA-i checkpoints in the official Hugging Face layout.

``config``: what config.json says and whether we support it; ``keys``: the
renames from the official tensor names to our modules; ``load``: resolving a
directory or hub id and strict safetensors loading; ``tiny``: random-weight
checkpoints in the official layout for tests and the demo; ``answer_rig``: a tiny
checkpoint whose answer (two [SEG], [SEG] last, no [SEG], endless) follows a query word.
"""
