"""Errors of the core, each with a message a user can act on.

The ROS layer turns every one of these into a failed request or transition
with this message; none of them may take the node down.
"""

from __future__ import annotations


class Sa2VAError(Exception):
    """Base class of every error the core raises on purpose."""


class CheckpointError(Sa2VAError):
    """A checkpoint cannot be found, read or matched to the model."""


class StrictLoadError(CheckpointError):
    """Tensors on disk and parameters of the model do not match one to one."""

    def __init__(self, missing: list[str], unexpected: list[str], mismatched: list[str]):
        self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched
        parts = []
        for label, names in (("missing from the checkpoint", missing),
                             ("left over in the checkpoint", unexpected),
                             ("with a wrong shape", mismatched)):
            if names:
                shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
                parts.append(f"{label}: {shown}")
        super().__init__("strict loading failed; " + "; ".join(parts))


class ModelLoadError(CheckpointError):
    """Building or filling the network failed (out of memory, a missing package...); the reason is said."""


class UnsupportedModelError(CheckpointError):
    """The checkpoint is a Sa2VA variant this port does not load (yet)."""


class QueryError(Sa2VAError):
    """The query cannot be grounded as given (empty, too long...)."""


class FramesError(Sa2VAError):
    """The frames cannot be grounded (none, wrong dtype or shape, sizes differ)."""


class NumericsError(Sa2VAError):
    """The model computed inf/NaN (e.g. a language model overflowing float16)."""


class Cancelled(Sa2VAError):
    """The caller asked to stop (e.g. an action goal was cancelled)."""


class ObjectFault(Exception):
    """One object's part of a tracking step failed (``obj_id``); the other objects' parts did not.

    The tracker raises it from an object's own work (its memory, its commit) so
    that the worker can end that object alone; ``cause`` is the original error.
    """

    def __init__(self, obj_id: int, cause: BaseException):
        super().__init__(f"object {obj_id}: {type(cause).__name__}: {cause}")
        self.obj_id, self.cause = obj_id, cause
