"""One object's SAM2 memory bank, cut to what ``SAM2Base.track_step`` can still read.

sam2's offline predictor keeps every frame's output for the whole video. While
tracking frame ``t`` (forward, ``memory_temporal_stride_for_eval = r``) its
``_prepare_memory_conditioned_features`` reads only:

* every conditioning frame (``max_cond_frames_in_attn = -1``): spatial memory,
  and the object pointer of those at ``<= t``;
* spatial memories of non-conditioning frames back to ``t - ((num_maskmem - 2) * r + 1)``
  (``t - 6`` for SAM2's r = 1, num_maskmem = 7);
* object pointers of non-conditioning frames back to
  ``t - (min(num_frames, max_obj_ptrs_in_encoder) - 1)`` (``t - 15``).

So this bank keeps the conditioning entries (bounded by the prompts), a sliding
window of non-conditioning entries, and strips the spatial memory from the ones
only their pointer is still needed for. Its ``output_dict`` has the layout
``track_step`` expects, so sam2 itself does the attention.
"""

from __future__ import annotations

import torch


def memory_horizons(model, num_frames: int) -> tuple[int, int]:
    """(spatial-memory horizon, object-pointer horizon) in frames before the current one."""
    if model.num_maskmem <= 1:
        spatial = 0
    else:
        spatial = (model.num_maskmem - 2) * model.memory_temporal_stride_for_eval + 1
    pointers = min(num_frames, model.max_obj_ptrs_in_encoder) - 1 if model.use_obj_ptrs_in_encoder else 0
    return spatial, pointers


class ObjectMemory:
    """``{"cond_frame_outputs", "non_cond_frame_outputs"}`` for one object, bounded."""

    def __init__(self, spatial_horizon: int, pointer_horizon: int) -> None:
        self.spatial_horizon = spatial_horizon
        self.keep = max(spatial_horizon, pointer_horizon)
        # Insertion order of conditioning frames matters: sam2 concatenates their
        # memories in dict order (first prompt occurrence first, as add_new_mask).
        self.cond: dict[int, dict] = {}
        self.recent: dict[int, dict] = {}
        self.output_dict = {"cond_frame_outputs": self.cond, "non_cond_frame_outputs": self.recent}

    def add_prompt(self, frame_idx: int, entry: dict) -> None:
        self.cond[frame_idx] = entry

    def add_tracked(self, frame_idx: int, entry: dict) -> None:
        """Store frame ``frame_idx`` and forget what the next frame can no longer read."""
        self.recent[frame_idx] = entry
        next_idx = frame_idx + 1
        for t in list(self.recent):
            age = next_idx - t
            if age > self.keep:
                del self.recent[t]
            elif age > self.spatial_horizon and "maskmem_features" in self.recent[t]:
                self.recent[t] = {"obj_ptr": self.recent[t]["obj_ptr"]}

    def spatial_count(self) -> int:
        return sum("maskmem_features" in e for e in self.recent.values())

    def tensor_bytes(self, shared: tuple[torch.Tensor, ...] = ()) -> int:
        """Bytes of the tensors this object holds (tensors in ``shared`` not counted)."""
        skip = {id(t) for t in shared}
        seen: set[int] = set()
        total = 0
        for entry in (*self.cond.values(), *self.recent.values()):
            for value in entry.values():
                for t in value if isinstance(value, list) else [value]:
                    if isinstance(t, torch.Tensor) and id(t) not in skip and id(t) not in seen:
                        seen.add(id(t))
                        total += t.numel() * t.element_size()
        return total
