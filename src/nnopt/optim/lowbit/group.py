"""Every tensor of a compact param group in one native call (``nnopt_<rule>_compact_many``).

The one-tensor path (``step.py``) costs ~15 us of Python per tensor: on 500 tensors of 1,000
elements its step took 7.5 ms against torch fused fp32's 2.9. Here a step builds a table of
pointers and storage descriptions (:class:`~nnopt.optim.kernels.compact.Compact`) once,
keeps it, and at the next step checks it tensor by tensor and writes the new gradients'
pointers in, as ``group_kernel.Table`` does for plain storage. The kernel advances the step
counters and the stochastic-rounding seeds itself.

A tensor joins the table once its compact state exists (its first step, which creates it,
runs on the one-tensor path) and while everything behind it is laid out for the kernel:
contiguous CPU tensors of one size, a float32 or bfloat16 weight, the group not maximizing
(that path negates the gradient).
"""

from __future__ import annotations

from array import array
from typing import Any

from torch import Tensor

from nnopt.optim import kernels
from nnopt.optim.contract import PLAIN, Plan
from nnopt.optim.contract import Stepped as Optimizer
from nnopt.optim.group_kernel import still_held
from nnopt.optim.kernels import compact
from nnopt.optim.lowbit import codes, forms

# The step a rule sees where the optimizer keeps no counter (step.py's _step after the first).
NOT_FIRST = 2.0


class Table:
    """One step's call, kept to be reused: ``rows`` holds per parameter what the next step's
    check compares (the parameter, its pointer, dtype and size, its state dict, every tensor
    behind the row with its pointer, the table and its gradient's slot there); ``sizes``,
    ``table``, ``step_code`` and ``compacts`` are the call's (``compact.run_many``)."""

    __slots__ = ("compacts", "keys", "options", "prepared", "rows", "sizes", "step_code", "table")

    def __init__(
        self, prepared: Any, keys: tuple, options: tuple, rows: list, sizes: list, table: list,
        step_code: int, compacts: list,
    ) -> None:  # fmt: skip
        self.prepared, self.keys, self.options = prepared, keys, options
        self.sizes, self.table = array("q", sizes), array("q", table)
        self.rows = [(*row[:6], self.table, row[6]) for row in rows]
        self.step_code = step_code
        self.compacts = (compact.Compact * len(compacts))(*compacts)

    def reuse(self, params: list[Tensor], all_state: dict) -> bool:
        """Whether every tensor behind the table is still what it was, writing each gradient's
        pointer in as it goes (``group_kernel.still_held``)."""
        return still_held(params, self.rows, all_state)

    def run(self) -> None:
        self.prepared.block.step = NOT_FIRST
        compact.run_many(self.prepared, self.sizes, self.table, self.step_code, self.compacts)


def options_of(group: dict[str, Any]) -> tuple:
    """What of a group decides each tensor's form (``forms.form_of``)."""
    return (group.get("state_dtype"), group.get("param_update"), group.get("min_8bit_size"))


def step_many(opt: Optimizer, group: dict[str, Any], how: Plan, params: list[Tensor]) -> list:
    """Step every parameter the table can take in one native call; return the others (for the
    one-tensor path), those without a gradient left out."""
    prepared = how.native
    if prepared is None or not compact.available():
        return params
    tables = opt.__dict__.setdefault("_compact_tables", {})
    keys = opt.state_keys(group)
    options = options_of(group)
    kept = tables.get(id(group))
    if (
        kept is not None
        and kept.prepared is prepared
        and kept.keys == keys
        and kept.options == options
        and kept.reuse(params, opt.state)
    ):
        kept.run()
        return []
    tables.pop(id(group), None)
    if len(set(map(id, params))) != len(params):
        return params  # duplicates: stepped twice, one after the other, by the one-tensor path
    built, rest = _build(opt, group, prepared, keys, options, params)
    if built is not None:
        built.run()
        if not rest:
            tables[id(group)] = built
    return [p for p in rest if p.grad is not None]


def _build(
    opt: Optimizer,
    group: dict[str, Any],
    prepared: Any,
    keys: tuple,
    options: tuple,
    params: list[Tensor],
) -> tuple[Table | None, list[Tensor]]:
    """The call for the parameters the kernel takes (None if none), and the others."""
    step_codes = kernels.cpu.STEP_CODES
    scalars = set(opt.scalar_state)
    rows, sizes, table, compacts, rest = [], [], [], [], []
    step_code = None  # one counter dtype per call (the group's)
    for p in params:
        row = _row(opt, group, prepared, keys, scalars, p)
        if row is None:
            rest.append(p)
            continue
        pointers, held, counter, c = row
        code = -1 if counter is None else step_codes[counter.dtype]
        if step_code is None:
            step_code = code
        if code != step_code:
            rest.append(p)
            continue
        state = opt.state[p]
        rows.append((p, pointers[0], p.dtype, p.numel(), state, tuple(held), len(table) + 1))
        sizes.append(p.numel())
        table.extend(pointers)
        compacts.append(c)
    if not rows:
        return None, rest
    # (step_code -1: no counters, the code is then unread)
    return Table(prepared, keys, options, rows, sizes, table, max(step_code, 0), compacts), rest


def _row(
    opt: Optimizer, group: dict[str, Any], prepared: Any, keys: tuple, scalars: set, p: Tensor
) -> tuple[list[int], list, Tensor | None, compact.Compact] | None:
    """Parameter ``p``'s row (pointers, the tensors behind them, its step counter, its
    storage), or None where the table cannot take it."""
    grad = p.grad
    if (
        grad is None
        or type(p) not in PLAIN
        or not p.is_cpu
        or p.dtype not in compact.PARAM_CODES
        or grad.dtype is not p.dtype
        or grad.is_sparse
        or not p.is_contiguous()
        or not grad.is_contiguous()
        or grad.numel() != (n := p.numel())
    ):
        return None
    state = opt.state.get(p)
    form = forms.form_of(group, p)
    if not state or not forms.held_in(form, state, keys):
        return None  # its first step (or a change of form): the one-tensor path conforms it
    held: list = []

    def pointer(key: str, tensor: Any, size: int | None) -> int:
        if not isinstance(tensor, Tensor) or not tensor.is_cpu or not tensor.is_contiguous():
            raise LookupError
        if size is not None and tensor.numel() != size:
            raise LookupError
        address = tensor.data_ptr()
        held.append((key, tensor, address))
        return address

    try:
        pointers = [p.data_ptr(), grad.data_ptr()]
        for name in prepared.pointers:
            if name in keys:
                pointers.append(pointer(name, state[name], n))
            elif name in scalars:
                if not kernels.cpu.is_scalar(state.get(name)):
                    raise LookupError
                pointers.append(pointer(name, state[name], 1))
            else:
                pointers.append(0)
        counter = None
        if opt.uses_step:
            counter = state.get("step")
            if not isinstance(counter, Tensor) or counter.dtype not in kernels.cpu.STEP_CODES:
                raise LookupError
            pointers.append(pointer("step", counter, 1))
        else:
            pointers.append(0)
        scales = {}
        for key in keys:
            scale = state.get(key + forms.ABSMAX)
            if scale is not None:
                pointer(key + forms.ABSMAX, scale, codes.blocks_of(n))
                scales[key] = scale
        comp = state.get(forms.COMP)
        if comp is not None:
            pointer(forms.COMP, comp, n)
        seed = state.get(forms.SEED)
        if seed is not None:
            if not forms.is_counter(seed):
                raise LookupError
            pointer(forms.SEED, seed, 1)
    except (LookupError, RuntimeError):  # (RuntimeError: a layout without storage)
        return None
    c = compact.Compact()
    signed = {k: forms.SIGNED[k] for k in scales}
    if not compact.fill(c, p, scales, signed, prepared.pointers, state_dtype=form.state,
                        update=form.update, comp=comp, seed=seed):  # fmt: skip
        return None
    return pointers, held, counter, c
