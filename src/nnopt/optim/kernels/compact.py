"""Python side of the compact-storage kernels (``cpu_compact.h``): one tensor per call, or
a whole group's table of them (``run_many``, for ``lowbit/group.py``).

``nnopt_<rule>_compact`` steps a float32 or bfloat16 weight with its rule's own float element,
its state held in float32, bfloat16 or 8 bits (block-wise), the weight rounded plainly,
stochastically or with a Kahan residual. :class:`Compact` mirrors the C struct; its size is
checked against the library's at first use.
"""

from __future__ import annotations

import ctypes
from array import array
from functools import cache

import torch
from torch import Tensor

from nnopt.optim.kernels import build
from nnopt.optim.kernels.cpu import Prepared

MAX_POINTERS = 8  # kMaxPointers: a block's pointers, p and g included
PARAM_CODES = {torch.float32: 0, torch.bfloat16: 2}
STATE_CODES = {"float32": 0, "bfloat16": 1, "int8": 2}
UPDATE_CODES = {"plain": 0, "stochastic": 1, "kahan": 2}


class Compact(ctypes.Structure):
    _fields_ = [
        ("param_dtype", ctypes.c_int32),
        ("state_code", ctypes.c_int32),
        ("update", ctypes.c_int32),
        ("comp_code", ctypes.c_int32),
        ("is_signed", ctypes.c_int32 * MAX_POINTERS),
        ("comp", ctypes.c_void_p),
        ("scales", ctypes.c_void_p * MAX_POINTERS),
        ("seed_state", ctypes.c_void_p),
    ]


@cache
def _checked() -> bool:
    lib = build.load()
    if lib is None:
        return False
    size = lib.nnopt_compact_size
    size.argtypes, size.restype = [], ctypes.c_size_t
    if size() != ctypes.sizeof(Compact):
        build.fail(f"Compact is {size()} bytes in the library, {ctypes.sizeof(Compact)} here")
        return False
    return True


def fill(
    c: Compact,
    param: Tensor,
    scales: dict[str, Tensor],
    signed: dict[str, bool],
    pointers: tuple[str, ...],
    *,
    state_dtype: str,
    update: str,
    comp: Tensor | None,
    seed: Tensor | None,
) -> bool:
    """Fill ``c``, one tensor's storage; False where the kernel cannot take it (a dtype it
    does not run). ``seed`` is the int64 counter of stochastic rounding, which the kernel
    reads and increments (a one-element CPU tensor)."""
    code = PARAM_CODES.get(param.dtype)
    if code is None:
        return False
    c.param_dtype, c.state_code = code, STATE_CODES[state_dtype]
    c.update = UPDATE_CODES[update] if code == 2 else 0
    c.comp_code = STATE_CODES[_comp_dtype(comp)] if comp is not None else 0
    c.comp = comp.data_ptr() if comp is not None else None
    c.seed_state = seed.data_ptr() if seed is not None else None
    for index, name in enumerate(pointers, start=2):
        if name in scales:
            c.scales[index] = scales[name].data_ptr()
            c.is_signed[index] = int(signed[name])
    return True


def run(
    prepared: Prepared,
    param: Tensor,
    grad: Tensor,
    state: dict[str, Tensor],
    scales: dict[str, Tensor],
    signed: dict[str, bool],
    *,
    step: float,
    state_dtype: str,
    update: str,
    comp: Tensor | None,
    seed: Tensor | None,
) -> bool:
    """One tensor's step in compact storage; False (nothing touched) where the kernel cannot
    run it. ``state`` by field name (8-bit codes, bfloat16 or float32, laid out as ``param``,
    or NAdam's float32 scalars); ``scales`` the float32 absmax per block of each 8-bit state;
    ``comp`` the Kahan residual (float32 with float32 state, else the state's dtype, int8 for
    8 bits); ``seed`` stochastic rounding's counter (see :func:`fill`). The caller checked the
    layouts (contiguous CPU tensors of one size)."""
    if grad.dtype != param.dtype or not _checked():
        return False
    c = Compact()
    if not fill(c, param, scales, signed, prepared.pointers, state_dtype=state_dtype,
                update=update, comp=comp, seed=seed):  # fmt: skip
        return False
    block = prepared.block
    block.p, block.g, block.step = param.data_ptr(), grad.data_ptr(), float(step)
    for name in prepared.pointers:
        t = state.get(name)
        setattr(block, name, None if t is None else t.data_ptr())
    threads = torch.get_num_threads()
    return prepared.native.compact(param.numel(), threads, prepared.address, ctypes.byref(c)) == 0


def run_many(
    prepared: Prepared, sizes: array, table: array, step_code: int, compacts: ctypes.Array
) -> None:
    """Step many tensors in one call: ``sizes``, ``table`` and ``step_code`` as
    ``kernels.cpu.run_many`` (one row of pointers per tensor, then its step counter),
    ``compacts[i]`` row i's storage (:func:`fill`). Rows without a step counter run at the
    block's ``step``. The caller has checked every tensor."""
    status = prepared.native.compact_many(
        len(sizes),
        torch.get_num_threads(),
        prepared.address,
        sizes.buffer_info()[0],
        table.buffer_info()[0],
        step_code,
        compacts,
    )
    if status != 0:
        raise RuntimeError(f"nnopt_{prepared.rule}_compact_many failed: a bug")


def available() -> bool:
    """Whether the compact kernels are loaded and their struct matches :class:`Compact`."""
    return _checked()


def _comp_dtype(comp: Tensor) -> str:
    return {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.int8: "int8"}[comp.dtype]
