"""A module seen with some of its parts replaced, so that sam2's own methods call the replacements.

``ModuleView(model, image_encoder=..., memory_attention=...)`` reads every
other attribute from ``model`` and binds the model's methods to the view: when
sam2's ``track_step`` runs on the view, its ``self.memory_attention`` is the
replacement while every rule around it (memory selection, multimask choice,
object pointers, no-object embeddings) is sam2's code on sam2's parameters.
The model itself is never changed, so a torch tracker may share it.
"""

from __future__ import annotations

import inspect
import types


class ModuleView:
    """``target`` with the attributes in ``replaced`` swapped; calling it runs the target class's ``forward``."""

    def __init__(self, target, **replaced) -> None:
        self.__dict__["_target"] = target
        self.__dict__.update(replaced)

    def __getattr__(self, name: str):
        target = self.__dict__["_target"]
        attr = inspect.getattr_static(type(target), name, None)
        if isinstance(attr, types.FunctionType):
            return types.MethodType(attr, self)
        return getattr(target, name)

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError(f"a ModuleView is read-only (tried to set {name!r})")

    def __call__(self, *args, **kwargs):
        return type(self.__dict__["_target"]).forward(self, *args, **kwargs)
