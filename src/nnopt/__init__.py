"""nnopt: the seed's optimization techniques for PyTorch, correct and fast."""

from typing import Any

from nnopt import optim

globals().update({name: getattr(optim, name) for name in optim.__all__})

__version__ = "0.1.0"

# The training API pulls in data sets, pydantic and plotting: loaded on first use only.
_LAZY = {
    "train": ("nnopt.training", "train"),
    "Trainer": ("nnopt.training", "Trainer"),
    "Result": ("nnopt.training", "Result"),
    "Recipe": ("nnopt.recipe", "Recipe"),
    "RecipeError": ("nnopt.errors", "RecipeError"),
    "UserError": ("nnopt.errors", "UserError"),
    "ShardedOptimizer": ("nnopt.distributed", "ShardedOptimizer"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'nnopt' has no attribute {name!r}")


__all__ = [*optim.__all__, "__version__", *_LAZY]
