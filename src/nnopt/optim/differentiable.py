"""The step of a ``differentiable=True`` param group: autograd sees through it, as torch's."""

from __future__ import annotations

from typing import Any

import torch

from nnopt.optim.contract import Stepped as Optimizer
from nnopt.optim.dispatch import apply, plan
from nnopt.optim.lazy_state import init_state
from nnopt.optim.options import Hyper


def step_differentiable(opt: Optimizer, group: dict[str, Any], h: Hyper) -> None:
    """One step of a ``differentiable=True`` group, which autograd sees through (as torch's):
    the eager rule, parameter by parameter, under grad mode; no kernel, no flat buffer.

    Autograd keeps tensors a step reads for the backward pass, so the state tensors are
    replaced by fresh copies before the rule updates them in place: the next step cannot
    overwrite what this one saved. The parameter is updated in place, as torch does; so it
    must not be a leaf that requires grad (autograd refuses that for torch's optimizers too):
    meta-learning steps a non-leaf copy (``p = w.clone()``).
    """
    keys = opt.state_keys(group)
    how = plan(opt, group, h)  # (the eager rule: a differentiable group takes no kernel)
    for p in group["params"]:
        grad = p.grad
        if grad is None:
            continue
        if grad.is_sparse:
            grad = grad.to_dense()
        state = opt.state[p] if keys or opt.uses_step or opt.scalar_state else {}
        fresh = init_state(opt, group, p, state, keys)
        if opt.uses_step:
            state["step"] += 1  # a count: it never requires grad
        if opt.uses_step and opt.rule_reads_step:
            step = int(state["step"].item())
        else:
            step = 1 if fresh else 2
        for key in keys:
            state[key] = state[key].clone()
        param, tensors = p, {k: state[k] for k in keys}
        if param.is_complex():
            param, grad = torch.view_as_real(param), torch.view_as_real(grad)
            tensors = {k: torch.view_as_real(v) for k, v in tensors.items()}
        for name in opt.scalar_state:
            tensors[name] = state[name]
        apply(opt, h, param, grad, tensors, step, how)
