"""Import timm without torchvision.

Every timm release with ModelEmaV3 imports torchvision at import time (``timm.layers``,
``timm.data``, ``timm.utils``), and PyPI's torchvision wheels link against CUDA torch, so
they do not load with the CPU torch this project pins. timm's schedulers, EMA helpers and
models never call torchvision; only its image transforms and FrozenBatchNorm2d conversion do.
``fake_torchvision()`` stands an inert ``torchvision`` in for the duration of ``import timm``
(every attribute a placeholder class) and removes it afterwards, so nothing else in the
session sees it.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Iterator

import torch


class _PlaceholderMeta(type(torch.nn.Module)):
    def __getattr__(cls, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        sub = type(cls)(name, (cls,), {})
        setattr(cls, name, sub)
        return sub


class _Placeholder(torch.nn.Module, metaclass=_PlaceholderMeta):
    """What any torchvision attribute is: a class whose attributes are distinct subclasses."""


class _Module(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        sub = _PlaceholderMeta(name, (_Placeholder,), {})
        setattr(self, name, sub)
        return sub


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _Module(spec.name)
        module.__path__ = []
        module.__version__ = "0.0.0"
        return module

    def exec_module(self, module) -> None:
        pass


def _drop() -> None:
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]


@contextlib.contextmanager
def fake_torchvision() -> Iterator[None]:
    """Within the block, ``import torchvision`` (and any submodule) gives the stand-in."""
    finder = _Finder()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        _drop()


def import_timm():
    """``import timm`` (and the parts the tests use); the real torchvision if it loads."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # absent, or a CUDA build that does not load with CPU torch
        _drop()
        with fake_torchvision():
            import timm
            import timm.scheduler
            import timm.utils
    import timm
    import timm.scheduler
    import timm.utils

    return timm
