"""One-pass kernels for the update rules, with the eager rules as their reference.

An optimizer's ``kernels`` attribute picks the path of each update:

- ``"auto"`` (default): on the CPU, nnopt's native kernels (``cpu.py``: one pass over memory
  with L2, decoupled decay and the L1 proximal step folded in), a whole param group per call,
  except for tensors of ``group_kernel.LARGE`` elements or more, which go to PyTorch's fused
  kernel where its math is exactly the update (Adam, SGD, AdaGrad without L1 and without both
  L2 and decay: it streams those ~15% faster than ours here); on CUDA, PyTorch's fused
  kernel; else the eager rule (see ``nnopt.optim.dispatch``);
- ``"native"``: nnopt's kernels or the eager rule (never PyTorch's fused kernels);
- ``"torch"``: PyTorch's fused kernels or the eager rule (nnopt 0.1's behaviour);
- ``"eager"``: always the eager rule, the reference the kernels are tested against.

The native kernels run on contiguous CPU tensors of float32, float64 and bfloat16; any other
tensor (CUDA, float16, complex viewed as real is fine) falls back without error.
"""

from __future__ import annotations

from nnopt.optim.kernels import build, cpu
from nnopt.optim.kernels.cpu import available

MODES = ("auto", "native", "torch", "eager")


def check_mode(mode: str) -> str:
    """Validate an optimizer's ``kernels`` setting, naming the allowed values."""
    if mode not in MODES:
        raise ValueError(f"kernels must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    return mode


def use_native(mode: str) -> bool:
    """Whether ``mode`` lets nnopt's native kernels run."""
    return check_mode(mode) in ("auto", "native")


def use_torch_fused(mode: str) -> bool:
    """Whether ``mode`` lets PyTorch's fused kernels run."""
    return check_mode(mode) in ("auto", "torch")


__all__ = ["MODES", "available", "build", "check_mode", "cpu", "use_native", "use_torch_fused"]
