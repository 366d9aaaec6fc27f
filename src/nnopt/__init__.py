"""nnopt: the seed's optimization techniques for PyTorch, correct and fast.

Every public name loads on first use: ``import nnopt`` itself imports neither torch nor the
training stack, so the command line starts (``nnopt --help``, ``nnopt datasets``) in a fraction
of torch's own import time. ``nnopt.Adam`` and the other optimizers (``nnopt.optim``) load torch
when first named.
"""

from typing import Any

__version__ = "0.1.0"

# The training API pulls in data sets, pydantic and plotting: loaded on first use only.
_LAZY = {
    "train": ("nnopt.training", "train"),
    "compare": ("nnopt.experiments.api", "compare"),
    "lr_find": ("nnopt.experiments.api", "lr_find"),
    "Comparison": ("nnopt.experiments.api", "Comparison"),
    "Trainer": ("nnopt.training", "Trainer"),
    "Result": ("nnopt.training", "Result"),
    "Recipe": ("nnopt.recipe", "Recipe"),
    "RecipeError": ("nnopt.errors", "RecipeError"),
    "UserError": ("nnopt.errors", "UserError"),
    "ShardedOptimizer": ("nnopt.distributed", "ShardedOptimizer"),
}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY:
        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module), attribute)
    elif _not_an_optimizer(name):
        raise AttributeError(f"module 'nnopt' has no attribute {name!r}")
    else:
        optim = importlib.import_module("nnopt.optim")  # the optimizers, and torch
        if name == "__all__":
            return [*optim.__all__, "__version__", *_LAZY]
        if name not in optim.__all__:
            raise AttributeError(f"module 'nnopt' has no attribute {name!r}")
        value = getattr(optim, name)
    globals()[name] = value  # later look-ups skip this function
    return value


def _not_an_optimizer(name: str) -> bool:
    """Names to refuse without importing torch: ``from nnopt import atomic`` asks for the
    submodule here first, and tools probe dunders such as ``__wrapped__``."""
    import importlib.util

    if name.startswith("__") and name != "__all__":
        return True
    return importlib.util.find_spec(f"nnopt.{name}") is not None


def __dir__() -> list[str]:
    return sorted({*globals(), *__getattr__("__all__")})
