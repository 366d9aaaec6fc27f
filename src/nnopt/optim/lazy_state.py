"""A parameter's optimizer state, created lazily at its first step, as torch creates it."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from nnopt.optim.contract import Stepped as Optimizer
from nnopt.optim.options import step_dtype

# ``initial_state``'s answer for state that starts as a copy of its parameter.
COPY_OF_PARAM = "param"
Start = float | str  # a number, or COPY_OF_PARAM


def fill_start(state: Tensor, start: Start, param: Tensor) -> Tensor:
    """``state`` (in place) set to its initial value: ``start``, or a copy of ``param``."""
    return state.copy_(param) if start == COPY_OF_PARAM else state.fill_(start)


def new_state(param: Tensor, start: Start) -> Tensor:
    """A state tensor laid out like ``param``, at its initial value."""
    if start == COPY_OF_PARAM:
        return torch.clone(param, memory_format=torch.preserve_format)
    if param.is_complex():
        start = complex(start, start)  # complex numbers are pairs of reals, as torch
    return torch.full_like(param, start, memory_format=torch.preserve_format)


def init_state(
    opt: Optimizer,
    group: dict[str, Any],
    param: Tensor,
    state: dict,
    keys: tuple[str, ...] | None = None,
) -> bool:
    """Create the missing state of one parameter (lazily, as torch); True if any was new.

    State moved or cast with its parameter (``model.to()``) follows it, as torch does.
    """
    keys = opt.state_keys(group) if keys is None else keys
    if keys and len(state) == state_size(opt, keys) and keys[-1] in state:
        # The common case, checked cheaply: complete state, laid out like the parameter.
        held = state[keys[0]]
        if held is not None and held.dtype == param.dtype and held.device == param.device:
            return False
    fresh = False
    for key in keys:
        held = state.get(key)
        if held is None:
            state[key] = new_state(param, opt.initial_state(group, key))
            fresh = True
        elif held.dtype != param.dtype or held.device != param.device:
            state[key] = held.to(param)
    return init_counters(opt, state) or fresh


def init_counters(opt: Optimizer, state: dict[str, Any]) -> bool:
    """The step counter and the rule's scalars (NAdam's mu_product) where ``state`` lacks
    them; True if any was made."""
    fresh = False
    if opt.uses_step and "step" not in state:
        state["step"] = torch.tensor(0.0, dtype=step_dtype())
        fresh = True
    for name, start in opt.scalar_state.items():
        if name not in state:
            state[name] = torch.tensor(start, dtype=step_dtype())
            fresh = True
    return fresh


def state_size(opt: Optimizer, keys: tuple[str, ...]) -> int:
    """How many entries a parameter's complete state has: its tensors shaped like it, the
    step counter, the scalars."""
    return len(keys) + opt.uses_step + len(opt.scalar_state)
