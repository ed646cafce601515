"""The networks, loaded and run step by step: checkpoints, Sa2VA, SAM2, prompts, generation, [SEG] decoding.

Below everything else (it imports only ``sa2va_i_ros.errors``): the tracker, the
grounding engines and the offline tools are built from these pieces.
"""
