"""What ``nnopt bench`` can time by default, without importing torch (``nnopt --help`` reads it)."""

from __future__ import annotations

# name -> (number of tensors, elements per tensor)
SHAPES: dict[str, tuple[int, ...]] = {"2000x1000": (2000, 1000), "8x2.5M": (8, 2_500_000)}

# The optimizers timed unless others are asked for (step.OPTIMIZERS: every one that can be).
DEFAULT = ("adam", "momentum", "rmsprop_torch", "adagrad")
