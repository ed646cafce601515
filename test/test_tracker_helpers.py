"""Shared helpers of the tracker tests: a tiny SAM2, synthetic videos, sam2's offline reference.

No tests here. The offline reference is built the way Sa2VA-i builds it
(``init_state`` on a JPEG folder, images overwritten with the exact tensors the
tracker uses, video size = image size, ``add_new_mask`` per sampled frame,
``propagate_in_video``, then Sa2VA's (S, S) -> (H, W) resize), and shares no
code with the tracker beyond sam2 itself and ``preprocess.sam2_pixels``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tempfile
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from sa2va_i_ros.model.preprocess import sam2_pixels
from sa2va_i_ros.model.sam2_model import SA2VA_OVERRIDES, SAM2_CONFIG
from sa2va_i_ros.testing.tiny_sa2va import TINY_SAM2

os.environ.setdefault("TQDM_DISABLE", "1")  # sam2's propagate_in_video progress bars

# A SAM2 that builds in a fraction of a second and tracks a 128x128 frame in a few ms.
TINY_SPEC = dataclasses.replace(TINY_SAM2, image_size=128)  # the tiny checkpoints' SAM2, at 128 px for speed
# SAM 2.1-style temporal encoding of object pointers (Sa2VA's SAM 2.0 config has it off).
SAM21_TPOS = (
    "++model.add_tpos_enc_to_obj_ptrs=true",
    "++model.proj_tpos_enc_in_obj_ptrs=true",
    "++model.use_signed_tpos_enc_to_obj_ptrs=true",
)
# Random weights put every object score near one value. Scaling the score head's last
# layer and shifting its bias makes the score depend on the frame, so the test videos
# get a mix of "object" / "no object" frames (asserted by the tests that rely on it).
PRESENCE_GAIN = 300.0
PRESENCE_SHIFT = 25.0
# With random weights the pointers' temporal encoding barely moves the output; scaled up,
# a different normalisation of pointer positions shows in the logits.
TPOS_GAIN = 100.0

H, W = 48, 64  # synthetic frame size (not square, not S: both resizes are exercised)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread while a tracker test runs: on a shared 2-core machine, OpenMP
    threads that spin against other processes make the tiny model 10-50x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.lru_cache(maxsize=8)
def tiny_model(seed: int = 0, overrides: tuple[str, ...] = ()):
    """sam2's SAM2VideoPredictor with Sa2VA's config, the tiny spec and random weights (eval)."""
    import sam2  # noqa: F401  (registers sam2's hydra configs)
    from hydra import compose
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    torch.manual_seed(seed)
    cfg = compose(config_name=SAM2_CONFIG,
                  overrides=[*SA2VA_OVERRIDES, *TINY_SPEC.hydra_overrides(), *overrides])
    OmegaConf.resolve(cfg)
    model = instantiate(cfg.model, _recursive_=True).eval()
    last = model.sam_mask_decoder.pred_obj_score_head.layers[-1]
    with torch.no_grad():
        last.weight.mul_(PRESENCE_GAIN)
        last.bias.mul_(PRESENCE_GAIN).add_(PRESENCE_SHIFT)
    if model.proj_tpos_enc_in_obj_ptrs:
        with torch.no_grad():
            model.obj_ptr_tpos_proj.weight.mul_(TPOS_GAIN)
    return model


def make_frames(n: int, seed: int = 0, size: tuple[int, int] = (H, W)) -> list[np.ndarray]:
    """A red blob moving right over noise, with a bright flash every fifth frame."""
    rng = np.random.default_rng(seed)
    h, w = size
    frames = []
    for i in range(n):
        f = (rng.integers(0, 40, (h, w, 3))).astype(np.uint8)
        x = 4 + (3 * i) % max(1, w - 16)
        f[h // 3: h // 3 + h // 3, x: x + 12] = (220, 60, 60)
        if i % 5 == 3:
            f[:] = np.clip(f.astype(int) + 170, 0, 255).astype(np.uint8)
        frames.append(f)
    return frames


def blob_mask(i: int, size: tuple[int, int] = (H, W), shift: int = 0) -> np.ndarray:
    h, w = size
    m = np.zeros((h, w), bool)
    x = 4 + (3 * i) % max(1, w - 16) + shift
    m[h // 3: h // 3 + h // 3, max(0, x): x + 12] = True
    return m


def disc_and_line_mask(size: tuple[int, int]) -> np.ndarray:
    """A disc plus a thin diagonal line: a mask whose downsizing depends on antialiasing."""
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    r = min(h, w) / 5
    return ((yy - h * 0.45) ** 2 + (xx - w * 0.4) ** 2 < r**2) | (np.abs(yy - 0.6 * xx - h * 0.1) < 1.5)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


@dataclass
class OfflineFrame:
    frame_idx: int
    mask: np.ndarray  # bool (H, W)
    logits: torch.Tensor  # low-res pred_masks sam2 stored for the frame
    score_logit: float


def offline_reference(model, frames: list[np.ndarray], prompts: list[tuple[int, np.ndarray]],
                      pixels: list[torch.Tensor] | None = None) -> dict[int, OfflineFrame]:
    """sam2's offline predictor on ``frames`` with ``add_new_mask`` per (index, mask), in order."""
    size = model.image_size
    pixels = pixels if pixels is not None else [sam2_pixels(f, size) for f in frames]
    h, w = frames[0].shape[:2]
    with tempfile.TemporaryDirectory() as folder:
        for i, f in enumerate(frames):
            Image.fromarray(f).save(os.path.join(folder, f"{i:05d}.jpg"))
        state = model.init_state(video_path=folder)
    state["images"] = torch.stack(pixels)
    state["cached_features"] = {}  # init_state cached frame 0 of the JPEG pixels
    state["video_height"] = state["video_width"] = size
    for idx, mask in prompts:
        model.add_new_mask(state, idx, 101, mask)
    out: dict[int, OfflineFrame] = {}
    for fi, _, video_res in model.propagate_in_video(state):
        per_obj = state["output_dict_per_obj"][0]
        stored = per_obj["cond_frame_outputs"].get(fi) or per_obj["non_cond_frame_outputs"][fi]
        full = F.interpolate(video_res.float().cpu(), size=(h, w), mode="bilinear", align_corners=False)
        out[fi] = OfflineFrame(fi, (full[0, 0].sigmoid() > 0.5).numpy(), stored["pred_masks"].float().cpu(),
                               float(stored["object_score_logits"].reshape(-1)[0]))
    return out


class EncoderCounter:
    """Counts image-encoder forward passes (context manager)."""

    def __init__(self, model) -> None:
        self.model = model
        self.calls = 0

    def __enter__(self) -> EncoderCounter:
        def hook(*_):
            self.calls += 1

        self._handle = self.model.image_encoder.register_forward_hook(hook)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()


def object_results(frames, obj_id: int) -> list:
    """The ObjectResults of ``obj_id`` in a list of FrameResults (frames without it skipped)."""
    return [f.objects[obj_id] for f in frames if obj_id in f.objects]


def assert_matches_offline(results, ref: dict[int, OfflineFrame], min_iou: float = 0.999,
                           atol: float = 1e-4) -> None:
    """Every streamed frame equals sam2's offline output: same frames, masks, logits, scores."""
    assert [r.frame_index for r in results] == sorted(ref)
    for r in results:
        o = ref[r.frame_index]
        assert r.mask.shape == o.mask.shape and r.mask.dtype == np.bool_
        assert iou(r.mask, o.mask) >= min_iou, f"frame {r.frame_index}: IoU {iou(r.mask, o.mask)}"
        assert r.logits.shape == o.logits.shape
        assert float((r.logits.float().cpu() - o.logits).abs().max()) <= atol, f"frame {r.frame_index}"
        assert abs(r.score - 1 / (1 + np.exp(-o.score_logit))) < 1e-5


def assert_mixed(results, at_least: int = 2) -> None:
    """The tracked (non-prompt) frames hold both empty and non-empty masks, else a test proves little."""
    tracked = [r for r in results if not r.is_prompt]
    empty = sum(not r.mask.any() for r in tracked)
    assert empty >= at_least and len(tracked) - empty >= at_least, (empty, len(tracked))


# Batch rows are not bit-identical on every CPU: the same object computed in another row (or in a batch of
# another size) differs by float rounding (an AVX2 AMD EPYC gave scores 0.22356904 and 0.22356920 for two
# identical objects in one batch). What the tracker promises is the same logits to rounding, the same
# presence score, and the same mask wherever a pixel is not within rounding of the threshold.
ROW_ATOL = 1e-4


def assert_rows_agree(a, b, what: str = "", atol: float = ROW_ATOL) -> None:
    """``a`` and ``b`` (ObjectResults of one object computed in different batch rows) agree as above."""
    la, lb = a.logits.float().cpu(), b.logits.float().cpu()
    assert float((la - lb).abs().max()) <= atol, f"{what}: logits differ by more than {atol}"
    assert a.score == pytest.approx(b.score, abs=atol), what
    # the mask's own resize (low-res -> image size -> frame size, bilinear): where the logit is decided
    size = max(la.shape[-1] * 4, 1)
    full = F.interpolate(F.interpolate(la, size=(size, size), mode="bilinear", align_corners=False),
                         size=a.mask.shape, mode="bilinear", align_corners=False)[0, 0].numpy()
    decided = np.abs(full) > atol
    assert decided.mean() > 0.99, f"{what}: too many pixels at the threshold to compare"
    np.testing.assert_array_equal(a.mask[decided], b.mask[decided], err_msg=what)
