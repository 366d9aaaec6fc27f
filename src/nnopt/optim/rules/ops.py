"""What every rule is written with: its return type and the in-place ops that take a number
or, in a differentiable step, a Tensor that requires grad (a number takes torch's fused-scalar
op, so the numbers of the ordinary step do not change)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

Divisor = float | Tensor
Scalar = float | Tensor  # a Tensor only where a differentiable step needs its gradient


def add_(target: Tensor, x: Tensor, alpha: Scalar) -> Tensor:
    """target <- target + alpha * x."""
    if isinstance(alpha, Tensor):
        return target.add_(x * alpha)
    return target.add_(x, alpha=alpha)


def addcmul_(target: Tensor, x: Tensor, y: Tensor, value: Scalar) -> Tensor:
    """target <- target + value * x * y."""
    if isinstance(value, Tensor):
        return target.add_(x * y * value)
    return target.addcmul_(x, y, value=value)


def addcdiv_(target: Tensor, x: Tensor, y: Tensor, value: Scalar) -> Tensor:
    """target <- target + value * x / y."""
    if isinstance(value, Tensor):
        return target.add_(x / y * value)
    return target.addcdiv_(x, y, value=value)


def plus_(x: Tensor, eps: float) -> Tensor:
    """x + eps, in place, except in a differentiable step: there x is a square root's output,
    which autograd keeps for the backward pass."""
    return x.add(eps) if torch.is_grad_enabled() else x.add_(eps)


def sqrt_of(x: Scalar) -> Scalar:
    return x.sqrt() if isinstance(x, Tensor) else math.sqrt(x)
