"""nnopt's group kernel: every plain contiguous CPU tensor of a param group in one native call
per dtype (``kernels/cpu.py``'s ``run_many``), the step counters advanced by the kernel.

Per tensor it costs a dozen attribute reads in Python, where every per-tensor path costs
5-25 us; on a group of 2,000 small tensors that overhead, not memory traffic, was the step's
time. The table of pointers a step builds is kept (:class:`Table`) and, at the next step,
checked tensor by tensor and reused with the new gradients' pointers written in: on the
MNIST-1D CNN (8 tensors) that halves the Python work of the step. ``dispatch.step_group``
calls :func:`step_many` first and steps what it leaves by the other paths.
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
from nnopt.optim.lazy_state import init_state, state_size

# Elements from which a tensor goes to torch's fused kernel rather than the group kernel.
LARGE = 1 << 17


class Table:
    """One step's rows of a group, kept to be reused: ``rows`` holds per parameter what the
    check at the next step compares (the parameter, its data pointer, dtype, size, its state
    dict and the state tensors behind the row with their pointers) and where its gradient's
    pointer goes; ``calls`` the (dtype code, step code, sizes, table) of each native call."""

    __slots__ = ("calls", "fused", "keys", "prepared", "rows")

    def __init__(self, prepared: Any, fused: bool, keys: tuple, rows: list, calls: list) -> None:
        self.prepared, self.fused, self.keys = prepared, fused, keys
        self.rows, self.calls = rows, calls

    def reuse(self, params: list[Tensor], all_state: dict) -> bool:
        """Whether every tensor behind the table is still what it was (:func:`still_held`),
        writing each gradient's pointer in as it goes."""
        return still_held(params, self.rows, all_state)


def still_held(params: list[Tensor], rows: list, all_state: dict) -> bool:
    """Whether each row (the parameter, its pointer, dtype and size, its state dict, the
    tensors behind the row with their pointers, its table and its gradient's slot there) still
    holds: same objects, same storage, contiguous, same dtype and size, the same state
    tensors. Writes each gradient's pointer into its table as it goes; False at the first
    difference (``p.data =``, ``p.grad.data =``, a state dict or tensor replaced, a gradient
    missing or sparse)."""
    if len(params) != len(rows):
        return False
    for p, (held, pointer, dtype, n, state, tensors, table, slot) in zip(params, rows, strict=True):
        grad = p.grad
        if (
            p is not held
            or grad is None
            or grad.dtype is not dtype
            or not grad.is_contiguous()  # (False for sparse gradients)
            or grad.numel() != n
            or p.data_ptr() != pointer
            or p.dtype is not dtype
            or not p.is_contiguous()
            or not p.is_cpu
            or all_state.get(p) is not state
        ):
            return False
        for key, tensor, address in tensors:
            if state.get(key) is not tensor or tensor.data_ptr() != address:
                return False
        table[slot] = grad.data_ptr()
    return True


def step_many(opt: Optimizer, group: dict[str, Any], how: Plan, params: list[Tensor]) -> list:
    """Step, in one native call per dtype, every parameter the group kernel can take (plain
    contiguous CPU tensors of a dtype it runs, state laid out alike); return the others.

    Every tensor is checked every step (``p.data =`` and ``p.grad.data =`` can change any of
    dtype, size and layout behind a kept object): against the kept :class:`Table` when the
    last step took every parameter, else from scratch (and the table is kept if this step
    takes every parameter).
    """
    prepared = how.native
    tables = opt.__dict__.setdefault("_group_tables", {})
    kept = tables.get(id(group))
    if (
        kept is not None
        and kept.prepared is prepared
        and kept.fused == how.fused
        and kept.keys == opt.state_keys(group)
        and kept.reuse(params, opt.state)
    ):
        for code, step_code, sizes, table in kept.calls:
            kernels.cpu.run_many(prepared, code, sizes, table, step_code)
        return []
    tables.pop(id(group), None)
    keys = opt.state_keys(group)
    complete = state_size(opt, keys)
    block = prepared.block
    plain = not (block.l2_on or block.l1_on or prepared.weight_decay)
    if not complete and prepared.rule == "sgd" and plain:
        return plain_descent(params, block.lr)
    if len(set(map(id, params))) != len(params):
        return params  # duplicates are stepped twice, one after the other, by step_group
    # The state behind each pointer of the block (None: unused by these options).
    scalars = prepared.scalars  # one-element float32 state (NAdam's mu_product)
    columns = [key if key in keys or key in scalars else None for key in prepared.pointers]
    unused = [0] * (len(columns) + 1)  # a stateless rule's row: no state, no counter
    codes = prepared.codes
    # Large tensors go to torch's fused kernel where it computes this update: per tensor its
    # launch costs ~20 us, little against a large tensor, and it streams ~15% faster than
    # ours there (nnopt bench, 8x2.5M).
    large = LARGE if how.fused else math.inf
    step_codes = kernels.cpu.STEP_CODES
    all_state = opt.state
    uses_step = opt.uses_step
    # (dtype code, step code) -> sizes, table, and per row (its parameter's record, the slot
    # of its gradient's pointer in the table)
    grouped: dict[tuple[int, int], tuple[list[int], list[int], list]] = {}
    rest = []
    for p in params:
        grad = p.grad
        if grad is None:
            rest.append(p)  # (nothing to step; recorded so that the table is not kept)
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
            state: dict = {}
            held = []
            if complete:
                state = all_state[p]
                if len(state) != complete:
                    init_state(opt, group, p, state, keys)
                for key in columns:
                    if key is None:
                        row.append(0)
                        continue
                    t = state[key]
                    if key in scalars:
                        if not kernels.cpu.is_scalar(t):
                            raise LookupError  # (a float64 default: step_group's path)
                    elif (
                        t.dtype is not dtype
                        or not t.is_cpu
                        or not t.is_contiguous()
                        or t.numel() != n
                    ):
                        raise LookupError  # laid out otherwise: step_group casts or moves it
                    row.append(t.data_ptr())
                    held.append((key, t, row[-1]))
                if uses_step:
                    counter = state["step"]
                    step_code = step_codes.get(counter.dtype, -1)
                    if step_code < 0 or not counter.is_cpu or counter.numel() != 1:
                        raise LookupError
                    row.append(counter.data_ptr())
                    held.append(("step", counter, row[-1]))
                else:
                    row.append(0)
            else:  # plain SGD keeps no state: torch makes no entry for it either
                row += unused
                state = all_state.get(p)
        except (RuntimeError, LookupError):
            rest.append(p)
            continue
        entry = grouped.get((code, step_code))
        if entry is None:
            entry = grouped[code, step_code] = ([], [], [])
        sizes, table, records = entry
        records.append((p, row[0], dtype, n, state, tuple(held), len(table) + 1))
        sizes.append(n)
        table.extend(row)
    calls, rows = [], []
    for (code, step_code), (sizes, table, records) in grouped.items():
        call = (code, step_code, array("q", sizes), array("q", table))
        kernels.cpu.run_many(prepared, code, call[2], call[3], step_code)
        calls.append(call)
        rows.extend((*record[:6], call[3], record[6]) for record in records)
    if not rest and len(rows) == len(params):
        order = {id(row[0]): row for row in rows}
        rows = [order[id(p)] for p in params]
        tables[id(group)] = Table(prepared, how.fused, keys, rows, calls)
    return [p for p in rest if p.grad is not None]


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
