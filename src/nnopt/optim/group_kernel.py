"""nnopt's group kernel: every plain contiguous CPU tensor of a param group in one native call
per dtype (``kernels/cpu.py``'s ``run_many``), the step counters advanced by the kernel.

Per tensor it costs a dozen attribute reads in Python, where every per-tensor path costs
5-25 us; on a group of 2,000 small tensors that overhead, not memory traffic, was the step's
time. ``dispatch.step_group`` calls it first and steps what it leaves by the other paths.
"""

from __future__ import annotations

import math
from array import array
from typing import Any

import torch
from torch import Tensor

from nnopt.optim import kernels
from nnopt.optim.contract import PLAIN as _PLAIN
from nnopt.optim.contract import Plan
from nnopt.optim.contract import Stepped as Optimizer
from nnopt.optim.lazy_state import init_state

# Elements from which a tensor goes to torch's fused kernel rather than the group kernel.
LARGE = 1 << 17


def step_many(opt: Optimizer, group: dict[str, Any], how: Plan, params: list[Tensor]) -> list:
    """Step, in one native call per dtype, every parameter the group kernel can take (plain
    contiguous CPU tensors of a dtype it runs, state laid out alike); return the others.

    Per tensor this costs a dozen attribute reads in Python and no allocation (the kernel
    also advances the step counters), where the per-tensor paths, torch's fused kernels
    included, cost 5-25 us: on a group of 2,000 small tensors that overhead, not memory
    traffic, was the step's time. Every tensor is checked every step (``p.data =`` and
    ``p.grad.data =`` can change any of dtype, size and layout behind a kept object).
    """
    prepared = how.native
    keys = opt.state_keys(group)
    complete = len(keys) + opt.uses_step
    block = prepared.block
    plain = not (block.l2_on or block.l1_on or prepared.weight_decay)
    if not complete and prepared.rule == "sgd" and plain:
        return plain_descent(params, block.lr)
    if len(set(map(id, params))) != len(params):
        return params  # duplicates are stepped twice, one after the other, by step_group
    # The state behind each pointer of the block (None: unused by these options).
    columns = [key if key in keys else None for key in prepared.pointers]
    unused = [0] * (len(columns) + 1)  # a stateless rule's row: no state, no counter
    codes = prepared.codes
    # Large tensors go to torch's fused kernel where it computes this update: per tensor its
    # launch costs ~20 us, little against a large tensor, and it streams ~15% faster than
    # ours there (nnopt bench, 8x2.5M).
    large = LARGE if how.fused else math.inf
    step_codes = kernels.cpu.STEP_CODES
    all_state = opt.state
    uses_step = opt.uses_step
    tables: dict[tuple[int, int], tuple[list[int], list[int]]] = {}
    rest = []
    for p in params:
        grad = p.grad
        if grad is None:
            continue
        try:
            dtype = p.dtype
            code = codes.get(dtype)
            if (
                code is None
                or type(p) not in _PLAIN
                or not p.is_cpu
                or grad.dtype is not dtype
                or not p.is_contiguous()
                or not grad.is_contiguous()  # False for sparse gradients
                or grad.numel() != (n := p.numel())
                or n >= large
            ):
                rest.append(p)
                continue
            row = [p.data_ptr(), grad.data_ptr()]  # (raises for layouts without storage)
            step_code = 0
            if complete:
                state = all_state[p]
                if len(state) != complete:
                    init_state(opt, group, p, state, keys)
                for key in columns:
                    if key is None:
                        row.append(0)
                        continue
                    t = state[key]
                    if (
                        t.dtype is not dtype
                        or not t.is_cpu
                        or not t.is_contiguous()
                        or t.numel() != n
                    ):
                        raise LookupError  # laid out otherwise: step_group casts or moves it
                    row.append(t.data_ptr())
                if uses_step:
                    counter = state["step"]
                    step_code = step_codes.get(counter.dtype, -1)
                    if step_code < 0 or not counter.is_cpu or counter.numel() != 1:
                        raise LookupError
                    row.append(counter.data_ptr())
                else:
                    row.append(0)
            else:  # plain SGD keeps no state: torch makes no entry for it either
                row += unused
        except (RuntimeError, LookupError):
            rest.append(p)
            continue
        entry = tables.get((code, step_code))
        if entry is None:
            entry = tables[code, step_code] = ([], [])
        entry[0].append(n)
        entry[1].extend(row)
    for (code, step_code), (sizes, table) in tables.items():
        kernels.cpu.run_many(prepared, code, array("q", sizes), array("q", table), step_code)
    return rest


def plain_descent(params: list[Tensor], lr: float) -> list[Tensor]:
    """theta <- theta - eta g on every plain CPU parameter with a gradient; returns the others.

    The eager rule is one torch op per tensor, and torch's foreach form of it runs that loop
    in C++: cheaper than reading pointers here, and torch's own loop bit for bit (duplicates
    included: stepped twice, in order).
    """
    ps, grads, rest = [], [], []
    for p in params:
        grad = p.grad
        if grad is None:
            continue
        if type(p) in _PLAIN and p.is_cpu:
            ps.append(p)
            grads.append(grad)
        else:
            rest.append(p)
    if ps:
        torch._foreach_add_(ps, grads, alpha=-lr)
    return rest
