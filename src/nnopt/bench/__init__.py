"""Benchmarks: optimizer step time against torch.optim and the memory-bandwidth floor.

The names load on first use: ``nnopt --help`` registers the ``bench`` command without torch.
"""

from typing import Any

_LAZY = {
    "add_bandwidth": "nnopt.bench.floor",
    "bytes_per_param": "nnopt.bench.floor",
    "SHAPES": "nnopt.bench.step",
    "StepResult": "nnopt.bench.step",
    "run": "nnopt.bench.step",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nnopt.bench' has no attribute {name!r}")


__all__ = list(_LAZY)
