"""One step of a param group held in compact storage (``state_dtype``, ``param_update``).

The group's tensors go to its rule's compact native kernel on the CPU in one call, where
their state exists and is laid out for it (``group.py``); each other parameter is stepped
alone: by the same kernel, one tensor per call (``kernels/compact.py``: unpack a block of 256
into float, the rule's float element, pack it back, one pass over memory), else by the eager
path, which computes the same thing in PyTorch
ops on float copies (CUDA, float64 or float16 weights, rules without a native kernel)::

    x = w (+ c: the Kahan residual)          the master weight, float32
    state32 = decode(state)                   8-bit codes, bfloat16 or float32 -> float32
    x, state32 <- the group's whole update    (dispatch.apply: L2, decay, rule, L1)
    w <- round(x) (nearest, stochastic, or Kahan: c <- x - w);  state <- encode(state32)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from nnopt.optim import dispatch
from nnopt.optim.contract import PLAIN, Plan
from nnopt.optim.contract import Stepped as Optimizer
from nnopt.optim.kernels import compact
from nnopt.optim.lazy_state import COPY_OF_PARAM, init_counters
from nnopt.optim.lowbit import forms
from nnopt.optim.lowbit import group as group_table
from nnopt.optim.options import Hyper


@torch.compiler.disable
def step_group(opt: Any, group: dict[str, Any], h: Hyper, how: Plan) -> None:
    """One step of every parameter of ``group`` that has a gradient.

    Under torch.compile this step runs eagerly, a graph break: inductor cannot compile the
    codes' bit operations (torch 2.13: a C++ compile error on float bitcasts), and the native
    kernel is the faster path anyway.
    """
    if how.native is None and opt.kernels != "eager":
        # Planned while torch.compile traced (no kernels there): plan again for this eager
        # step, with the lr as a number (the plan is memoized: a few us).
        h = opt.hyper(group, opt.current_lr(group))
        how = dispatch.plan(opt, group, h)
    keys = opt.state_keys(group)
    eager = Plan(how.options, native=None, fused=False)
    params = group["params"]
    if not h.maximize:  # (maximizing negates each gradient: a tensor per step, below)
        params = group_table.step_many(opt, group, how, params)
    for param in params:
        grad = param.grad
        if grad is None:
            continue
        if grad.is_sparse:
            grad = grad.to_dense()
        if h.maximize:
            grad = -grad
        state = opt.state[param]
        form = forms.form_of(group, param)
        if not forms.held_in(form, state, keys):
            start = {k: _start(opt, group, k, param, form) for k in keys if k not in state}
            fresh = forms.conform(state, param, keys, form, start)
        else:
            fresh = False
        fresh = init_counters(opt, state) or fresh
        step = _step(opt, state, fresh)
        if not _native(opt, how, param, grad, state, keys, form, step):
            _eager(opt, h, eager, param, grad, state, keys, form, step)


def _start(opt: Optimizer, group: dict[str, Any], key: str, param: Tensor, form: forms.Form) -> Any:
    start = opt.initial_state(group, key)
    return forms.master(param, {}, form.compute) if start == COPY_OF_PARAM else start


def _step(opt: Optimizer, state: dict[str, Any], fresh: bool) -> int:
    if not opt.uses_step:
        return 1 if fresh else 2
    state["step"] += 1
    return int(state["step"].item()) if opt.rule_reads_step else 1


def _native(
    opt: Optimizer,
    how: Plan,
    param: Tensor,
    grad: Tensor,
    state: dict[str, Any],
    keys: tuple[str, ...],
    form: forms.Form,
    step: int,
) -> bool:
    """The compact native kernel, where it runs these tensors (False: nothing touched)."""
    prepared = how.native
    if prepared is None or form.state == "float64" or type(param) not in PLAIN:
        return False
    tensors = [param, grad, *(state[k] for k in keys)]
    comp = state.get(forms.COMP)
    if comp is not None:
        tensors.append(comp)
    n = param.numel()
    if not all(t.is_cpu and t.is_contiguous() and t.numel() == n for t in tensors):
        return False
    held = {k: state[k] for k in keys}
    for name in opt.scalar_state:
        held[name] = state[name]
    scales = {k: state[k + forms.ABSMAX] for k in keys if k + forms.ABSMAX in state}
    signed = {k: forms.SIGNED[k] for k in scales}
    seed = state.get(forms.SEED)
    if seed is not None and not forms.is_counter(seed):
        return False
    return compact.run(
        prepared, param, grad, held, scales, signed, step=step, state_dtype=form.state,
        update=form.update, comp=comp, seed=seed,
    )  # fmt: skip


def _eager(
    opt: Optimizer,
    h: Hyper,
    how: Plan,
    param: Tensor,
    grad: Tensor,
    state: dict[str, Any],
    keys: tuple[str, ...],
    form: forms.Form,
    step: int,
) -> None:
    """The same step in PyTorch ops on float copies (any device)."""
    dtype = form.compute
    x = forms.master(param, state, dtype)
    tensors = {k: forms.read(state, k, dtype) for k in keys}
    for name in opt.scalar_state:
        tensors[name] = state[name]
    plain = dataclasses.replace(h, maximize=False)  # (the gradient is negated already)
    dispatch.apply(opt, plain, x, grad.to(dtype), tensors, step, how)
    with torch.no_grad():
        forms.store_weight(param, x, state, form)
    for k in keys:
        forms.write(state, k, tensors[k], form, param)
