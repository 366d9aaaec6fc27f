"""Python side of the compact-storage kernels (``cpu_compact.h``): one tensor per call.

``nnopt_<rule>_compact`` steps a float32 or bfloat16 weight with its rule's own float element,
its state held in float32, bfloat16 or 8 bits (block-wise), the weight rounded plainly,
stochastically or with a Kahan residual. :class:`Compact` mirrors the C struct; its size is
checked against the library's at first use.
"""

from __future__ import annotations

import ctypes
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
        ("seed", ctypes.c_uint32),
        ("comp", ctypes.c_void_p),
        ("scales", ctypes.c_void_p * MAX_POINTERS),
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
    seed: int,
) -> bool:
    """One tensor's step in compact storage; False (nothing touched) where the kernel cannot
    run it. ``state`` by field name (8-bit codes, bfloat16 or float32, laid out as ``param``,
    or NAdam's float32 scalars); ``scales`` the float32 absmax per block of each 8-bit state;
    ``comp`` the Kahan residual (float32 with float32 state, else the state's dtype, int8 for
    8 bits). The caller checked the layouts (contiguous CPU tensors of one size)."""
    code = PARAM_CODES.get(param.dtype)
    if code is None or grad.dtype != param.dtype or not _checked():
        return False
    c = Compact()
    c.param_dtype, c.state_code = code, STATE_CODES[state_dtype]
    c.update = UPDATE_CODES[update] if code == 2 else 0
    c.comp_code = STATE_CODES[_comp_dtype(comp)] if comp is not None else 0
    c.seed = seed & 0xFFFFFFFF
    c.comp = comp.data_ptr() if comp is not None else None
    block = prepared.block
    block.p, block.g, block.step = param.data_ptr(), grad.data_ptr(), float(step)
    for index, name in enumerate(prepared.pointers, start=2):
        t = state.get(name)
        setattr(block, name, None if t is None else t.data_ptr())
        if name in scales:
            c.scales[index] = scales[name].data_ptr()
            c.is_signed[index] = int(signed[name])
    threads = torch.get_num_threads()
    return prepared.native.compact(param.numel(), threads, prepared.address, ctypes.byref(c)) == 0


def _comp_dtype(comp: Tensor) -> str:
    return {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.int8: "int8"}[comp.dtype]
