"""The grounding engine: Sa2VA-i's keyframe masks for a query on buffered frames.

``GroundingEngine.load`` reads a checkpoint (directory or hub id) natively;
``ground`` samples frames, asks the language model, and decodes every sampled
frame alone with the finetuned SAM2 decoder, as Sa2VA-i's ``predict_forward``
does before propagation. The SAM2 image encoder runs once per distinct sampled
frame; its raw features are returned so the tracker propagates without
re-encoding them.

``ground_steps`` is the same work as a generator that yields between bounded
steps (one frame's preprocessing, the vision tower on ``vision_frames_per_step``
frames, a prefill chunk, one generated token, one frame through the SAM2
encoder, one [SEG]'s decoding): the perception worker runs live tracking
between them. ``ground`` drains it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sa2va_i_ros.errors import Cancelled, CheckpointError, FramesError, NumericsError, QueryError, UnsupportedModelError
from sa2va_i_ros.model import preprocess, prompt
from sa2va_i_ros.model.checkpoint.build import load_failure, load_model
from sa2va_i_ros.model.checkpoint.config import read_config
from sa2va_i_ros.model.checkpoint.load import resolve
from sa2va_i_ros.model.checkpoint.placement import parse_devices
from sa2va_i_ros.model.checkpoint.tokenizer import load_tokenizer
from sa2va_i_ros.model.device import autocast, language_model_dtype, resolve_device, resolve_dtype
from sa2va_i_ros.model.generation import StopWords, drain, greedy_steps
from sa2va_i_ros.model.sam2_model import encode_image, with_decoder_convs
from sa2va_i_ros.model.sampling import sample_indices, unique_in_order
from sa2va_i_ros.model.seg_decode import decode_language_prompt, logits_to_masks
from sa2va_i_ros.model.vision_features import image_embeddings

__all__ = ["GroundingEngine", "GroundingOptions", "GroundingResult", "load_tokenizer"]

Progress = Callable[[str, float, str], None]
REQUIRED_TOKENS = (prompt.IMG_START, prompt.IMG_END, prompt.IMG_CONTEXT, prompt.SEG_TOKEN)


@dataclass(frozen=True)
class GroundingOptions:
    num_frames: int = 5  # Sa2VA-i's predict_forward and evaluation default
    sampling: str = "uniform"
    question_mark_variant: bool = False
    max_new_tokens: int = 2048  # Sa2VA's generation config
    # step sizes for the perception worker (0: one step, as Sa2VA runs them): prompt positions per
    # prefill step and frames per vision-tower step; the results agree to float rounding
    prefill_chunk: int = 0
    vision_frames_per_step: int = 0
    sasasa2va_mode: str = "uniform"  # a SaSaSa2VA checkpoint's sampling mode (num_frames / sampling do not apply)


@dataclass
class GroundingResult:
    """What grounding found. ``masks`` is None (and ``reason`` says why) without [SEG]."""

    sampled_indices: list[int]
    answer: str  # the answer text without the trailing stop word
    raw_answer: str  # decoded generated tokens, as Sa2VA's 'prediction'
    seg_embeddings: torch.Tensor  # (n_seg, C) after text_hidden_fcs, float32 on cpu
    masks: np.ndarray | None  # (n_seg, len(sampled_indices), H, W) bool
    reason: str
    frame_size: tuple[int, int]
    sam2_pixels: dict[int, torch.Tensor] = field(default_factory=dict)  # frame -> (3, S, S)
    # frame -> encoder output through the ORIGINAL decoder's convs (batch 1, "convs": "original"),
    # what the tracker propagates from without running the encoder again
    sam2_features: dict[int, dict] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)
    token_ids: list[int] = field(default_factory=list)  # the generated tokens, stop token included

    @property
    def has_mask(self) -> bool:
        return self.masks is not None and len(self.masks) > 0

    @property
    def num_objects(self) -> int:
        """Objects of the answer: one per [SEG], each with its own masks (``seg`` below)."""
        return len(self.masks) if self.has_mask else 0

    def tracker_grounding(self, frames, stamps, prompt_frames: str = "all", seg: int = 0, tracker_sam2=None):
        """The tracker's input: these frames, one [SEG]'s masks on the prompted frames, reused features.

        ``prompt_frames`` "all" seeds SAM2 with every sampled mask (Sa2VA-i's code),
        "first" with the first sampled frame's only (the paper's Table 6).
        ``tracker_sam2``: the tracker's model, when it may not be the checkpoint's own
        SAM2; then only what that model can reuse is handed over (encoder features
        only from its own encoder, pixels only at its input size).
        """
        from sa2va_i_ros.tracking import Grounding

        if prompt_frames not in ("all", "first"):
            raise ValueError(f"prompt_frames must be 'all' or 'first', got {prompt_frames!r}")
        if not self.has_mask:
            raise ValueError(f"no mask to prompt with: {self.reason}")
        sampled = self.sampled_indices[:1] if prompt_frames == "first" else self.sampled_indices
        features, pixels = self.reusable([self.sam2_features[i] for i in sampled],
                                         [self.sam2_pixels[i] for i in sampled], tracker_sam2)
        return Grounding(frames=list(frames), stamps=list(stamps), sampled_indices=list(sampled),
                         masks=list(self.masks[seg][: len(sampled)]), raw_features=features, pixels=pixels)

    @staticmethod
    def reusable(features: list, pixels: list, tracker_sam2=None) -> tuple[list, list]:
        """The grounding's SAM2 features and pixels a tracker may reuse: those of its own encoder and input
        size (None elsewhere: the tracker encodes that frame itself, its features differ)."""
        if tracker_sam2 is None:
            return features, pixels
        size = int(tracker_sam2.image_size)
        return ([f if f.get("encoder") is tracker_sam2.image_encoder else None for f in features],
                [p if tuple(p.shape[-2:]) == (size, size) else None for p in pixels])

    def prompts(self, seg: int = 0) -> dict[int, np.ndarray]:
        """Frame index -> mask of one [SEG]; a duplicated index keeps its last mask, as add_new_mask."""
        if not self.has_mask:
            raise ValueError(f"no mask to prompt with: {self.reason}")
        return {idx: self.masks[seg, k] for k, idx in enumerate(self.sampled_indices)}


def load_parts(model: str, device: str, dtype: str, revision: str | None, lm_devices,
               check: Callable[[str, object], None], **model_kwargs):
    """What an engine is built from: (network, tokenizer, config, device, dtype, load report).

    Devices and dtype are checked before anything is read; ``check(model, cfg)`` refuses a
    checkpoint of another kind before its weights load; ``model_kwargs`` go to ``load_model``.
    """
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    layer_devices = parse_devices(lm_devices)
    for d in layer_devices:
        resolve_device(str(d))
    directory = resolve(model, revision)
    cfg = read_config(directory, name=model)
    check(model, cfg)
    net, report = load_model(cfg, directory, model, dev, dt, lm_dtype=language_model_dtype(dt),
                             lm_devices=layer_devices, **model_kwargs)
    try:
        tokenizer = load_tokenizer(directory, model)
    except Exception as exc:
        raise load_failure(model, exc) from None
    return net, tokenizer, cfg, dev, dt, report


def _sa2va_only(model: str, cfg) -> None:
    if cfg.kind != "sa2va":
        raise UnsupportedModelError(
            f"{model} is a SaSaSa2VA checkpoint: it runs in its own pipeline (grounding/sasasa2va; sa2va-i-video, "
            "sa2va-i-eval and the node pick it from config.json), not in Sa2VA-i's grounding engine")


class GroundingEngine:
    kind = "sa2va"  # config.json's model kind (SaSaSa2VAEngine: "sasasa2va")

    def __init__(self, model, tokenizer, cfg, device: torch.device, dtype: torch.dtype, report: dict):
        self.model, self.tokenizer, self.cfg = model, tokenizer, cfg
        self.device, self.dtype, self.load_report = device, dtype, report
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in REQUIRED_TOKENS}
        unknown = [t for t, i in ids.items() if i is None or i == tokenizer.unk_token_id]
        if unknown:
            raise CheckpointError(f"{cfg.name}: the tokenizer lacks {', '.join(unknown)}")
        self.img_context_id, self.seg_id = ids[prompt.IMG_CONTEXT], ids[prompt.SEG_TOKEN]
        self.eos_id = tokenizer.eos_token_id
        self.stop = StopWords(tokenizer, cfg.template.stop_words)
        self.forbidden = sorted({*tokenizer.all_special_tokens, *REQUIRED_TOKENS, prompt.IMAGE_PLACEHOLDER},
                                key=len, reverse=True)
        self.max_positions = int(model.language_model.config.max_position_embeddings)

    @classmethod
    def load(cls, model: str, device: str = "cpu", dtype: str = "float32",
             original_sam2: str | Path | None = None, revision: str | None = None,
             lm_devices: str | list[str] | None = None) -> GroundingEngine:
        """Load a Sa2VA / Sa2VA-i checkpoint directory or hub id (``revision``: a hub branch, tag or commit).

        The network is built without weights and each tensor read straight into
        its dtype and device (``checkpoint.build``). ``dtype`` float16 keeps the
        language model in float32 (``device.language_model_dtype``);
        ``lm_devices`` (e.g. "cuda:0,cuda:1") spreads the language model over
        several GPUs. Every failure is a ``CheckpointError`` (or ``ValueError`` for
        a bad device/dtype) with the reason.
        """
        return cls(*load_parts(model, device, dtype, revision, lm_devices, _sa2va_only,
                               original_sam2=original_sam2))

    # -- checks ---------------------------------------------------------------------------------
    def check_query(self, query: str) -> None:
        if not isinstance(query, str) or not query.strip():
            raise QueryError("the query is empty")
        bad = [t for t in self.forbidden if t in query]
        if bad:
            raise QueryError(f"the query contains reserved token text {bad[0]!r}")

    @staticmethod
    def check_frames(frames: Sequence[np.ndarray]) -> tuple[int, int]:
        if len(frames) == 0:
            raise FramesError("no frames to ground on")
        try:
            checked = [preprocess.check_frame(f) for f in frames]
        except ValueError as exc:
            raise FramesError(str(exc)) from exc
        sizes = {f.shape[:2] for f in checked}
        if len(sizes) > 1:
            raise FramesError(f"all frames must have one size; got {sorted(sizes)}")
        return checked[0].shape[:2]

    # -- grounding ------------------------------------------------------------------------------
    def ground(self, frames: Sequence[np.ndarray], query: str, options: GroundingOptions | None = None,
               progress: Progress | None = None, cancelled: Callable[[], bool] | None = None) -> GroundingResult:
        """Keyframe masks for ``query`` on ``frames`` (RGB uint8, oldest first)."""
        return drain(self.ground_steps(frames, query, options, progress, cancelled))

    @torch.no_grad()
    def language_on_images(self, pixels: torch.Tensor, ids: list[int], opts: GroundingOptions,
                           cancelled: Callable[[], bool] | None = None):
        """(generation, [SEG] embeddings) for prompt ``ids`` on preprocessed images ``pixels`` in one call.

        For pipelines with their own image layout (SaSaSa2VA's clip images): the
        same vision tower and greedy generation as ``ground_steps``, not stepped.
        """
        vit = image_embeddings(self.model, pixels.to(self.device, self.dtype))
        return drain(self._language(vit, ids, opts, cancelled))

    @torch.no_grad()
    def ground_steps(self, frames: Sequence[np.ndarray], query: str, options: GroundingOptions | None = None,
                     progress: Progress | None = None, cancelled: Callable[[], bool] | None = None
                     ) -> Generator[str, None, GroundingResult]:
        """``ground`` as a generator: yields a stage name after each bounded step, returns the result.

        Bad input raises (``QueryError``, ``FramesError``) at the first ``next``,
        before any model call.
        """
        opts = options or GroundingOptions()
        report = progress or (lambda stage, fraction, detail: None)
        self.check_query(query)
        height, width = self.check_frames(frames)
        try:
            sampled = sample_indices(len(frames), opts.num_frames, opts.sampling)
        except ValueError as exc:
            raise FramesError(str(exc)) from exc
        unique = unique_in_order(sampled)
        text = prompt.build_prompt(query, len(unique), self.cfg.template, opts.question_mark_variant)
        ids = self.tokenizer.encode(text)
        if len(ids) + 1 > self.max_positions:
            raise QueryError(f"the prompt is {len(ids)} tokens, more than the language model's "
                             f"{self.max_positions} positions; shorten the query or use fewer frames")
        timings: dict[str, float] = {}
        clock = _StepClock(timings)

        def check_cancel(where: str) -> None:
            if cancelled is not None and cancelled():
                raise Cancelled(f"cancelled {where}")

        report("sampling", 0.05, f"{len(unique)} distinct of {len(sampled)} sampled frames out of {len(frames)}")
        mllm, sam_pixels = [], {}
        for i in unique:
            with clock("preprocess"):
                mllm.append(preprocess.mllm_pixels(frames[i]))
                sam_pixels[i] = preprocess.sam2_pixels(frames[i], self.cfg.sam2.image_size)
            yield "preprocess"
        check_cancel("after preprocessing")

        report("language_model", 0.15, "vision tower and greedy generation")
        pixels = torch.stack(mllm)
        per_step = opts.vision_frames_per_step if opts.vision_frames_per_step > 0 else len(pixels)
        vit = []
        for start in range(0, len(pixels), per_step):
            with clock("language"):
                vit.append(image_embeddings(self.model, pixels[start:start + per_step].to(self.device, self.dtype)))
            yield "vision"
        steps = self._language(torch.cat(vit), ids, opts, cancelled)
        while True:
            try:
                with clock("language"):
                    stage = next(steps)
            except StopIteration as done:
                gen, seg_embeddings = done.value
                break
            yield stage
        raw_answer = self.tokenizer.decode(gen.token_ids, skip_special_tokens=False).strip()
        answer = _strip_stop_words(raw_answer, self.cfg.template.stop_words)
        result = GroundingResult(sampled, answer, raw_answer, seg_embeddings.float().cpu(), None, "",
                                 (height, width), timings_ms=timings, token_ids=list(gen.token_ids))
        if len(seg_embeddings) == 0:
            result.reason = (f"the model answered without a {prompt.SEG_TOKEN} token: {answer!r}"
                             if gen.stopped_by != "max_new_tokens" else
                             f"generation hit max_new_tokens ({opts.max_new_tokens}) before a "
                             f"{prompt.SEG_TOKEN} token")
            timings["total"] = sum(timings.values())
            return result
        check_cancel("after generation")

        report("decoding", 0.6, f"SAM2 image encoder on {len(unique)} frames")
        result.sam2_pixels = sam_pixels
        for_decoding, for_tracking = {}, {}
        encoding = self._encode_steps(sam_pixels, for_decoding, for_tracking)
        while True:
            try:
                with clock("decode"):
                    next(encoding)
            except StopIteration:
                break
            yield "sam2_encoder"
        result.sam2_features = for_tracking
        masks = []
        for k, emb in enumerate(seg_embeddings):
            report("decoding", 0.6 + 0.3 * k / len(seg_embeddings), f"[SEG] {k + 1} on {len(sampled)} frames")
            with clock("decode"):
                masks.append(self._decode(for_decoding, sampled, emb, height, width))
            yield "seg_decode"
        result.masks = np.stack(masks)
        timings["total"] = sum(timings.values())
        return result

    def _language(self, pixels_embedded: torch.Tensor, ids: list[int], opts: GroundingOptions, cancelled):
        """Image tokens into the prompt, then greedy generation, one model call per step (a generator)."""
        model, dev = self.model, self.device
        vit = pixels_embedded
        input_ids = torch.tensor([ids], device=dev)
        embeds = model.language_model.get_input_embeddings()(input_ids).clone()
        selected = input_ids[0] == self.img_context_id
        if int(selected.sum()) != vit.shape[0] * vit.shape[1]:
            raise RuntimeError(f"prompt holds {int(selected.sum())} {prompt.IMG_CONTEXT} tokens for "
                               f"{vit.shape[0] * vit.shape[1]} image embeddings")
        embeds[0, selected] = vit.reshape(-1, vit.shape[-1]).to(embeds.dtype)
        gen = yield from greedy_steps(model.language_model, embeds, seg_id=self.seg_id, eos_id=self.eos_id,
                                      stop=self.stop, max_new_tokens=opts.max_new_tokens, cancelled=cancelled,
                                      prefill_chunk=opts.prefill_chunk)
        seg = model.text_hidden_fcs(gen.seg_hidden.to(dev))
        if not bool(torch.isfinite(seg).all()):
            lm_dtype = str(embeds.dtype).removeprefix("torch.")
            raise NumericsError(f"the language model ({lm_dtype}) produced inf/NaN [SEG] states; "
                                "run it in bfloat16 or float32 (dtype auto keeps it in float32 on GPUs "
                                "without bfloat16)")
        return gen, seg

    def _encode(self, pixels: dict[int, torch.Tensor]) -> tuple[dict[int, dict], dict[int, dict]]:
        """Features of every frame for the finetuned and for the original decoder (``_encode_steps`` drained)."""
        for_decoding, for_tracking = {}, {}
        for _ in self._encode_steps(pixels, for_decoding, for_tracking):
            pass
        return for_decoding, for_tracking

    def _encode_steps(self, pixels: dict[int, torch.Tensor], for_decoding: dict[int, dict],
                      for_tracking: dict[int, dict]) -> Generator[int, None, None]:
        """Image encoder once per frame (a generator: one frame per step); features for both decoders.

        Frames go through one at a time and their raw multi-level features are
        reduced right away by each decoder's 1x1 convolutions (the level-0 map
        shrinks 8x), so the full-resolution raw maps of all sampled frames never
        coexist. Positional encodings depend only on the map size: one copy is
        shared by every frame. The original-decoder features (``convs`` =
        "original") are what the tracker propagates from.
        """
        model, finetuned, shared_pos = self.model, self.model.finetuned_decoder, None
        for i, px in pixels.items():
            with autocast(self.device, self.dtype):
                raw = encode_image(model.sam2, px[None].to(self.device, self.dtype))
                shared_pos = shared_pos or raw["vision_pos_enc"]
                raw["vision_pos_enc"] = shared_pos
                for_decoding[i] = with_decoder_convs(raw, finetuned)
                for_tracking[i] = {**with_decoder_convs(raw, model.sam2.sam_mask_decoder), "convs": "original"}
            del raw
            yield i

    def _decode(self, features: dict[int, dict], sampled: list[int], embedding: torch.Tensor,
                height: int, width: int) -> np.ndarray:
        """Masks (len(sampled), H, W) of one [SEG] embedding, every sampled frame decoded alone."""
        levels = len(features[sampled[0]]["backbone_fpn"])
        backbone = {key: [torch.cat([features[i][key][lvl] for i in sampled]) for lvl in range(levels)]
                    for key in ("backbone_fpn", "vision_pos_enc")}
        language = embedding.to(self.dtype).reshape(1, 1, -1).expand(len(sampled), 1, -1)
        with autocast(self.device, self.dtype):
            low_res, _, _ = decode_language_prompt(self.model.sam2, self.model.finetuned_decoder, backbone,
                                                   language)
        return logits_to_masks(low_res, height, width).cpu().numpy()


class _StepClock:
    """Adds the wall time of each ``with clock(stage):`` block to ``timings[stage]`` (ms)."""

    def __init__(self, timings: dict[str, float]):
        self.timings = timings

    @contextlib.contextmanager
    def __call__(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + (time.perf_counter() - t0) * 1e3


def _strip_stop_words(text: str, words: tuple[str, ...]) -> str:
    for w in words:
        if text.endswith(w):
            return text[: -len(w)].strip()
    return text
