"""Argument checks with messages that name the argument and the allowed values."""

from __future__ import annotations

import math
from typing import Any

import torch


def check_type(name: str, value: Any, allowed: tuple[type, ...]) -> None:
    if not isinstance(value, allowed):
        names = " or ".join("None" if t is type(None) else t.__name__ for t in allowed)
        raise ValueError(f"{name} must be {names}, got {value!r}")


def _number(name: str, value: Any) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        value = value.item()  # torch accepts a Tensor lr or beta
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if math.isnan(value):
        raise ValueError(f"{name} must be a number, got nan")
    return float(value)


def check_nonnegative(name: str, value: Any) -> None:
    """name >= 0 (and finite)."""
    if not 0.0 <= _number(name, value) < math.inf:
        raise ValueError(f"{name} must be >= 0 and finite, got {value!r}")


def check_positive(name: str, value: Any) -> None:
    """name > 0 (and finite)."""
    if not 0.0 < _number(name, value) < math.inf:
        raise ValueError(f"{name} must be > 0 and finite, got {value!r}")


def check_unit_interval(name: str, value: Any) -> None:
    """name in [0, 1): decay rates, momentum coefficients."""
    if not 0.0 <= _number(name, value) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
