"""What compact storage refuses, said when the optimizer is built (not at its first step)."""

from __future__ import annotations

from typing import Any

from nnopt.checks import OptionError
from nnopt.optim.contract import Stepped as Optimizer
from nnopt.optim.lowbit import forms


def check_group(opt: Optimizer, group: dict[str, Any], *, flat: bool) -> None:
    """Raise OptionError, naming the option and what to do, where ``group``'s compact storage
    cannot be honoured exactly."""
    if not forms.active(group):
        return
    name = type(opt).__name__
    asked = _asked(group)
    if opt.whole_tensors(group) or getattr(opt, "whole_parameters", False):
        raise OptionError(
            f"{asked}: {name} reads each weight whole (matrix products, factored state) and "
            "keeps its own state shapes; compact storage covers the elementwise optimizers "
            "(SGD, AdaGrad, RMSprop, Adam/AdamW, NAdam, RAdam, Lion, AdEMAMix, Schedule-Free)",
            option=asked.split("=")[0],
        )
    if any(p.is_complex() for p in group["params"]):
        raise OptionError(
            f"{asked}: compact storage takes real parameters; a complex parameter keeps the "
            "default storage (put it in a param group of its own without these options)",
            option=asked.split("=")[0],
        )
    if flat:
        raise OptionError(
            f"{asked} with flat=True: compact state is stepped tensor by tensor; drop flat=True",
            option="flat",
        )
    if group.get("differentiable"):
        raise OptionError(
            f"{asked} with differentiable=True: rounding has no useful gradient; use the "
            "default storage for a differentiable step",
            option="differentiable",
        )
    if group.get("state_dtype") == "int8" and group.get("centered"):
        raise OptionError(
            "state_dtype='int8' with centered=True: the variance E - gbar^2 of two 8-bit "
            "numbers can fall below zero (a NaN step); use state_dtype='bfloat16'",
            option="state_dtype",
        )
    if group.get("state_dtype") == "int8":
        others = [k for k in opt.state_keys(group) if k not in forms.SIGNED]
        if others:
            raise OptionError(
                f"state_dtype='int8': {name}'s state {', '.join(others)} holds weights, not "
                "moments, and 8 bits would round them away; use state_dtype='bfloat16'",
                option="state_dtype",
            )


def _asked(group: dict[str, Any]) -> str:
    if group.get("state_dtype") is not None:
        return f"state_dtype={group['state_dtype']!r}"
    return f"param_update={group.get('param_update')!r}"
