"""Named timing profiles: what each model call costs on a desktop GPU and on a Jetson Orin.

The two totals come from the issue that asked for them: a grounding of about
1 s and 30 ms per frame and object on a desktop GPU (sam2 reports 24-40
frames/s for Hiera-L on an A100), 4 s and 120 ms on a Jetson Orin. How the
grounding splits over the engine's steps is an estimate from the models' sizes
(InternViT-300M at 448 px per frame, a ~0.5-1B language model over a prompt of
5 x 256 image tokens plus text, greedy tokens, SAM2 Hiera-L's encoder per
frame, one [SEG] decode); with the node's default step sizes
(``prefill_chunk_tokens`` 128, ``vision_frames_per_step`` 1) no single step
exceeds 2 tracker frames of one object. A tracked frame is SAM2's image encoder
(two thirds of it, Hiera-L) and a per-object part (``object_s``): a live step
runs the encoder once for all objects, as does a catch-up frame for the objects
of one answer. Publishing a frame's messages costs host time (``publish_s``). These
are stand-ins for scheduling tests and benchmarks, not measurements.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Profile:
    name: str
    preprocess_s: float  # per sampled frame (448 px and SAM2 resizes)
    vision_s: float  # vision tower, per frame
    prefill_s_per_token: float
    token_s: float  # one generated token fed back through the language model
    sam2_encode_s: float  # SAM2 image encoder, per sampled frame
    seg_decode_s: float  # one [SEG] decoded on every sampled frame
    seed_prompt_s: float  # seeding the tracker, per prompted frame
    track_s: float  # one tracked frame of one object: SAM2's image encoder and the object's own part
    prompt_frame_s: float  # a prompted frame reached by the propagation (outputs its mask)
    object_s: float = 0.0  # the per-object part of track_s (memory attention, decoder, memory encoder)
    publish_s: float = 0.0  # building and publishing one frame's messages (host time)
    answer_tokens: int = 7  # "Sure, [SEG].<|im_end|>" with a Qwen2 tokenizer
    text_tokens: int = 40  # template and query around the image tokens

    def grounding_s(self, frames: int = 5, prefill_chunk: int = 128) -> float:
        """The whole grounding, for ``frames`` sampled frames (the prefill cost does not depend on chunking)."""
        tokens = frames * 256 + self.text_tokens
        return (frames * (self.preprocess_s + self.vision_s + self.sam2_encode_s) + tokens * self.prefill_s_per_token
                + (self.answer_tokens - 1) * self.token_s + self.seg_decode_s + frames * self.seed_prompt_s)

    @property
    def encode_s(self) -> float:
        """SAM2's image encoder on one frame (a live step runs it once for every tracked object)."""
        return self.track_s - self.object_s

    def live_s(self, objects: int) -> float:
        """One live step: the encoder once, the per-object part per object (not linear in the count)."""
        return self.encode_s + self.object_s * objects if objects else 0.0

    def scaled(self, factor: float, name: str) -> Profile:
        fields = {k: v * factor for k, v in self.__dict__.items() if isinstance(v, float)}
        return replace(self, name=name, **fields)


DESKTOP_GPU = Profile("desktop_gpu", preprocess_s=0.008, vision_s=0.020, prefill_s_per_token=0.00025,
                      token_s=0.050, sam2_encode_s=0.025, seg_decode_s=0.015, seed_prompt_s=0.006,
                      track_s=0.030, prompt_frame_s=0.001, object_s=0.010, publish_s=0.002)
JETSON = DESKTOP_GPU.scaled(4.0, "jetson")
PROFILES = {p.name: p for p in (DESKTOP_GPU, JETSON)}
