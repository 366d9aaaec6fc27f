"""A full-precision optimizer state (torch.optim's or nnopt's) into the compact form and back,
and the bytes each parameter holds.

    weights, state = to_compact(list(model.parameters()), opt.state_dict(), state_dtype="int8")
    model.to(torch.bfloat16); copy ``weights`` in; nnopt.optim.AdamW(..., state_dtype="int8",
        param_update="kahan").load_state_dict(state)
    weights, state = to_full(list(model.parameters()), compact.state_dict())
    torch.optim.AdamW(...).load_state_dict(state)     # float32 again, residual folded in

The i-th tensor of ``params`` is the i-th parameter of the state dict's groups, in order (the
order of ``model.parameters()`` for an optimizer built from it).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from nnopt.optim import registry
from nnopt.optim.lowbit import forms


def to_compact(
    params: Sequence[Tensor],
    state_dict: dict[str, Any],
    *,
    state_dtype: str = "int8",
    param_update: str = "kahan",
) -> tuple[list[Tensor], dict[str, Any]]:
    """bfloat16 weights and the state dict of an optimizer holding them compactly.

    Each weight is rounded to nearest; with ``param_update="kahan"`` what the rounding drops
    is kept as the residual, so :func:`to_full` gives the weights back to ~16 bits of
    mantissa. The state's tensors shaped like a weight are stored as ``state_dtype`` says (8
    bits for moments, ``forms.SIGNED``); the groups get both options, so the dict loads into
    an nnopt optimizer built with them (or without: it converts at the load)."""
    group = {"state_dtype": state_dtype, "param_update": param_update}
    for name, value in group.items():
        registry.check(name, value)
    out = copy.deepcopy(state_dict)
    weights = []
    for param, index in zip(params, _order(state_dict), strict=True):
        full = param.detach().float()
        weight = full.to(torch.bfloat16)
        form = forms.form_of(group, weight)
        saved = out["state"].get(index)
        state: dict[str, Any] = {}
        if saved is not None:
            keys = _shaped_keys(saved, param)
            state = {k: v for k, v in saved.items() if k not in keys}
            if form.state == "int8" and any(k not in forms.SIGNED for k in keys):
                form = forms.Form("float32", form.update)  # (no moment: kept in full)
            for key in keys:
                forms.write(state, key, saved[key].float(), form, weight)
        if form.update == "kahan":
            shown = weight.clone()
            forms.store_weight(shown, full, state, form)
        elif form.update == "stochastic":
            state[forms.SEED] = torch.randint(0, 2**32, (), dtype=torch.int64)
        if saved is not None or form.update != "plain":
            out["state"][index] = state
        weights.append(weight)
    for g in out["param_groups"]:
        g.update(group)
    return weights, out


def to_full(
    params: Sequence[Tensor], state_dict: dict[str, Any], dtype: torch.dtype = torch.float32
) -> tuple[list[Tensor], dict[str, Any]]:
    """``dtype`` weights (each bfloat16 weight plus its Kahan residual) and the state dict of a
    full-precision optimizer (8-bit moments decoded), loadable into torch.optim's twin."""
    out = copy.deepcopy(state_dict)
    weights = []
    for param, index in zip(params, _order(state_dict), strict=True):
        saved = out["state"].get(index, {})
        weights.append(forms.master(param, saved, dtype))
        if saved:
            full = forms.expanded(saved, dtype)
            for key in _shaped_keys(full, param):
                full[key] = full[key].to(dtype)
            out["state"][index] = full
    for g in out["param_groups"]:
        g.pop("state_dtype", None)
        g.pop("param_update", None)
    return weights, out


def bytes_per_param(optimizer: torch.optim.Optimizer) -> float:
    """Bytes held per parameter element: the weights, their gradients and every tensor of the
    optimizer's state (8-bit codes, absmax scales, residuals, counters), each storage once."""
    seen: set[tuple[int, int]] = set()
    total = elements = 0

    def count(t: Tensor) -> int:
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if key in seen:
            return 0
        seen.add(key)
        return t.untyped_storage().nbytes()

    for group in optimizer.param_groups:
        for p in group["params"]:
            elements += p.numel()
            total += count(p)
            if p.grad is not None:
                total += count(p.grad)
    for state in optimizer.state.values():
        for value in state.values() if isinstance(state, dict) else ():
            if isinstance(value, Tensor):
                total += count(value)
    return total / max(elements, 1)


def _order(state_dict: dict[str, Any]) -> list[Any]:
    return [i for g in state_dict["param_groups"] for i in g["params"]]


def _shaped_keys(state: dict[str, Any], param: Tensor) -> list[str]:
    """The entries of a full-precision state shaped like ``param`` (moments, sums)."""
    return [
        k for k, v in state.items() if forms.shaped_like_weight(k, v) and v.shape == param.shape
    ]
