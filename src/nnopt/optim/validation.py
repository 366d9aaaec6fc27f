"""Argument checks with messages that name the argument and the allowed values.

Each message starts with nnopt's words (the recipe loader names the field from them) and ends
with torch.optim's own message for the same mistake, so code and tests written against
torch.optim (``pytest.raises(ValueError, match="Invalid beta parameter at index 0")``) keep
matching: "betas[0] must be in [0, 1), got 1.0 (torch.optim: Invalid beta parameter at
index 0: 1.0)".
"""

from __future__ import annotations

import math
from typing import Any

import torch

from nnopt.checks import OptionError

__all__ = ["OptionError", "refuse", "check_type", "check_tensor_option"]

# torch.optim's message for an option out of range, by nnopt's name of the option.
TORCH_WORDS = {
    "lr": "Invalid learning rate: {}",
    "eps": "Invalid epsilon value: {}",
    "betas[0]": "Invalid beta parameter at index 0: {}",
    "betas[1]": "Invalid beta parameter at index 1: {}",
    "weight_decay": "Invalid weight_decay value: {}",
    "momentum": "Invalid momentum value: {}",
    "lr_decay": "Invalid lr_decay value: {}",
    "initial_accumulator_value": "Invalid initial_accumulator_value value: {}",
    "alpha": "Invalid alpha value: {}",
    "momentum_decay": "Invalid momentum_decay value: {}",
}


def refuse(name: str, value: Any, allowed: str) -> OptionError:
    """``name must be <allowed>, got <value>``, with torch's message for ``name`` if any."""
    words = TORCH_WORDS.get(name)
    return OptionError(
        f"{name} must be {allowed}, got {value!r}",
        words.format(value) if words else None,
        option=name,
    )


def check_type(name: str, value: Any, allowed: tuple[type, ...]) -> None:
    if not isinstance(value, allowed):
        names = " or ".join("None" if t is type(None) else t.__name__ for t in allowed)
        raise OptionError(f"{name} must be {names}, got {value!r}", option=name)


def check_tensor_option(name: str, value: Any) -> None:
    """A Tensor option holds one element (torch's "Tensor lr must be 1-element")."""
    if isinstance(value, torch.Tensor) and value.numel() != 1:
        raise OptionError(
            f"{name} must be a number or a one-element Tensor, got a Tensor of shape "
            f"{tuple(value.shape)}",
            f"Tensor {name} must be 1-element",
            option=name,
        )


def _number(name: str, value: Any) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        value = value.item()  # torch accepts a Tensor lr or beta
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OptionError(f"{name} must be a number, got {value!r}", option=name)
    if math.isnan(value):
        raise refuse(name, value, "a number")
    return float(value)


def check_nonnegative(name: str, value: Any) -> None:
    """name >= 0 (and finite)."""
    if not 0.0 <= _number(name, value) < math.inf:
        raise refuse(name, value, ">= 0 and finite")


def check_positive(name: str, value: Any) -> None:
    """name > 0 (and finite)."""
    if not 0.0 < _number(name, value) < math.inf:
        raise refuse(name, value, "> 0 and finite")


def check_unit_interval(name: str, value: Any) -> None:
    """name in [0, 1): decay rates, momentum coefficients."""
    if not 0.0 <= _number(name, value) < 1.0:
        raise refuse(name, value, "in [0, 1)")


def check_below_one(name: str, value: Any) -> None:
    """name < 1 (SOAP's shampoo_beta: in [0, 1), or negative for "the same as beta2")."""
    if not -math.inf < _number(name, value) < 1.0:
        raise refuse(name, value, "< 1 (in [0, 1), or negative: beta2)")


def check_nonpositive(name: str, value: Any) -> None:
    """name <= 0 (and finite): Adafactor's beta2_decay."""
    if not -math.inf < _number(name, value) <= 0.0:
        raise refuse(name, value, "<= 0 and finite")


def check_at_least_one(name: str, value: Any) -> None:
    """name >= 1 (and finite): Adafactor's clipping threshold d."""
    if not 1.0 <= _number(name, value) < math.inf:
        raise refuse(name, value, ">= 1 and finite")


def check_iterations(name: str, value: Any) -> None:
    """name an int in [0, 100): Muon's Newton-Schulz steps (torch: fewer than 100)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 100:
        raise OptionError(
            f"{name} must be an int in [0, 100), got {value!r}",
            "Number of steps must be less than 100 for computational efficiency",
            option=name,
        )


def check_triple(name: str, value: Any) -> None:
    """name three finite numbers: Muon's Newton-Schulz coefficients (a, b, c)."""
    if not isinstance(value, tuple | list) or len(value) != 3:
        raise OptionError(
            f"{name} must be three numbers (a, b, c), got {value!r}",
            "Coefficients must be a tuple of exactly 3 values",
            option=name,
        )
    for index, item in enumerate(value):
        if not math.isfinite(_number(f"{name}[{index}]", item)):
            raise refuse(f"{name}[{index}]", item, "finite")
