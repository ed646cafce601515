"""Configure-time construction: from the node's parameters to a loaded ``Session``, or an exception saying why not.

Kept out of the node so that ``on_configure`` reads "load, or stay unconfigured
with the reason": anything raised here (parameters that do not fit together or
cannot run on this device, ImportError, out of memory, a bug) fails the
transition. The heavy imports happen here, when the node is configured, not
when the process starts.
"""

from __future__ import annotations

import gc
import time
import weakref
from dataclasses import dataclass

from sa2va_i_ros.ros.parameters import check_together
from sa2va_i_ros.runtime.frame_buffer import FrameBuffer
from sa2va_i_ros.runtime.session import Session, Settings
from sa2va_i_ros.runtime.worker.cameras import build_sessions

# parameters that are the session's Settings (a change reaches the worker at once)
SESSION_SETTINGS = ("num_frames", "max_num_frames", "sampling", "prompt_frames", "max_query_chars",
                    "max_queued_requests", "max_tracks", "gap_policy", "max_new_tokens", "max_catch_up_sec",
                    "prefill_chunk_tokens", "vision_frames_per_step", "presence_threshold", "lost_after_frames",
                    "found_after_frames", "reground_after_sec", "reground_max_attempts", "reground_backoff",
                    "reground_window_sec", "sasasa2va_mode")


@dataclass
class Loaded:
    sessions: dict[str, Session]  # one per camera, sharing the engine and the SAM2 weights
    summary: str  # what was loaded, where and how fast: the model state /diagnostics and the log show

    @property
    def session(self) -> Session:
        """The first camera's session."""
        return next(iter(self.sessions.values()))


def tracker_settings(p: dict, device: str, dtype: str):
    """The tracker model and config the parameters ask for; ValueError for what cannot run here.

    Checked before the checkpoint loads: an unknown model, weights for the
    ``checkpoint`` tracker, reduced precision on a CPU, or a speed path this
    device lacks (compile, channels-last on a CPU; compile without triton).
    """
    import torch

    from sa2va_i_ros.model.device import resolve_dtype
    from sa2va_i_ros.tracking import TrackerChoice, TrackerConfig
    from sa2va_i_ros.tracking.fast import resolve_fast_paths

    choice = TrackerChoice(p["tracker_model"], p["tracker_weights"])
    auto = "float32" if p["tracker_backend"] == "onnxruntime" else dtype  # the exported graphs are float32
    tracker_dtype = resolve_dtype(auto if p["tracker_dtype"] == "auto" else p["tracker_dtype"], torch.device(device))
    fast = resolve_fast_paths(p["tracker_compile"], p["tracker_channels_last"], torch.device(device))
    off = [name for name, on in (("tracker_compile", fast.compile), ("tracker_channels_last", fast.channels_last))
           if p[name] and not on]
    if off:
        raise ValueError(f"{' and '.join(off)} cannot run on device {device} ({'; '.join(fast.notes)}): set "
                         f"{'them' if len(off) > 1 else 'it'} false")
    config = TrackerConfig(dtype=tracker_dtype, threshold=p["presence_threshold"], lost_after=p["lost_after_frames"],
                           found_after=p["found_after_frames"], compile=p["tracker_compile"],
                           channels_last=p["tracker_channels_last"], backend=p["tracker_backend"],
                           onnx_dir=p["tracker_onnx_dir"], preprocess=p["tracker_preprocess"])
    return choice, config


def load_session(p: dict, track_ids, cameras: list[str] | None = None) -> Loaded:
    """The grounding engine (Sa2VA / Sa2VA-i or SaSaSa2VA, by the checkpoint) and a session per camera (its
    own frame buffer and tracker state; the engine and SAM2 loaded once).

    ``track_ids`` is the node's id counter: ids stay unique across cleanups and cameras.
    """
    why = check_together(p)
    if why:
        raise ValueError(why)
    from sa2va_i_ros.grounding.kinds import load_grounding_engine
    from sa2va_i_ros.model.device import resolve_auto

    device, dtype = resolve_auto(p["device"], p["dtype"])
    choice, tracker_config = tracker_settings(p, device, dtype)  # refused before the model loads
    t0 = time.perf_counter()
    # Sa2VA / Sa2VA-i or SaSaSa2VA, by the checkpoint's config.json (model_type)
    engine = load_grounding_engine(p["model"], device=device, dtype=dtype,
                                   original_sam2=p["original_sam2"] or None,
                                   revision=p["model_revision"] or None, lm_devices=p["lm_devices"] or None,
                                   tracker=choice)
    # the heap is trimmed when the network is really gone: a cleanup's worker thread may drop it after free_memory
    weakref.finalize(engine.model, trim_host_heap)

    def buffer() -> FrameBuffer:
        return FrameBuffer(max_frames=p["buffer_max_frames"], max_seconds=p["buffer_max_seconds"],
                           max_bytes=p["buffer_max_megabytes"] << 20, downscale=p["buffer_downscale"] or None)

    sessions = build_sessions(engine, cameras or [""], buffer, Settings(**{k: p[k] for k in SESSION_SETTINGS}),
                              track_ids=track_ids, tracker_config=tracker_config, tracker_model=choice)
    tracker = next(iter(sessions.values())).tracker  # every camera's tracker runs its SAM2 and compiled paths
    if tracker.fast_paths.compile:
        tracker.warm_up()  # compiled here, not during the first query
    summary = (f"loaded {p['model']} ({engine.kind}) on {device}/{dtype} in {time.perf_counter() - t0:.1f} s; "
               f"tracker {choice.model} in {tracker_config.dtype}").replace("torch.", "")
    return Loaded(sessions, summary)


def free_memory() -> None:
    """After a failed configure or a cleanup: the model's memory goes back (CUDA's cache included).

    Host memory too: glibc keeps freed weight tensors under its mmap threshold
    (which rises to 32 MB once a large block was freed) in its heaps, so the
    process held a whole model's RSS after a cleanup until ``malloc_trim``
    hands those pages back to the system.
    """
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass
    trim_host_heap()


def trim_host_heap() -> None:
    """glibc's ``malloc_trim(0)``: free heap pages go back to the system (a no-op elsewhere)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
