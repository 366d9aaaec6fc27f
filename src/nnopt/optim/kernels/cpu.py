"""Python side of the native CPU kernels: every rule one pass over memory.

Every kernel updates ``param`` and its state in place exactly as the eager composition in
``nnopt.optim.dispatch.apply`` does (formulas in ``nnopt.optim.rules``)::

    g <- g + l2 * theta                          coupled L2 (the user's grad is not written)
    theta <- theta * (1 - eta * weight_decay)    decoupled decay
    theta, state <- rule(theta, g, state)        preconditioner d
    theta <- sign(theta) * max(|theta| - l1 * eta / d, 0)    L1 proximal step

An optimizer declares its rule's kernel as a :class:`Kernel` (the rule's name and the values
of its own fields in the block, which ``NNOPT_RULE`` declares in ``cpu_kernels.cpp``); a
:class:`Prepared` kernel is that block filled once for a param group's options and
regularization, its lr set per step. It runs on one tensor (``run_one``: False, nothing
touched, when it cannot run these tensors: not on the CPU, not contiguous, mixed or
unsupported dtypes) or on a whole param group in one call (``run_many``).
"""

from __future__ import annotations

import ctypes
from array import array
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import torch
from torch import Tensor

from nnopt.optim.kernels import blocks, build

DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.bfloat16: 2}
# Step counters the many-tensor kernels read: float32 or float64 scalars (options.step_dtype).
STEP_CODES = {torch.float32: 0, torch.float64: 1}


@dataclass(frozen=True)
class Native:
    """One rule's entry points in the library: one tensor, many tensors, and its block."""

    one: Any
    many: Any
    compact: Any  # bfloat16 weights, 8-bit state (cpu_compact.h; kernels/compact.py)
    compact_many: Any
    block: type[ctypes.Structure]


@cache
def _library() -> dict[str, Native] | None:
    """Rule -> its entry points, once the library is loaded and its blocks read."""
    lib = build.load()
    if lib is None:
        return None
    found = blocks.read(lib)
    if isinstance(found, str):
        return build.fail(found)
    natives = {}
    for rule, block in found.items():
        one = getattr(lib, f"nnopt_{rule}")
        one.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int, ctypes.POINTER(block)]
        one.restype = ctypes.c_int
        many = getattr(lib, f"nnopt_{rule}_many")
        many.argtypes = [
            ctypes.c_int,
            ctypes.c_int64,
            ctypes.c_int,
            ctypes.POINTER(block),
            ctypes.c_void_p,  # int64 sizes[count]
            ctypes.c_void_p,  # void* table[count][pointers + 1]
            ctypes.c_int,
        ]
        many.restype = ctypes.c_int
        compact = getattr(lib, f"nnopt_{rule}_compact")
        compact.argtypes = [ctypes.c_int64, ctypes.c_int, ctypes.POINTER(block), ctypes.c_void_p]
        compact.restype = ctypes.c_int
        compact_many = getattr(lib, f"nnopt_{rule}_compact_many")
        compact_many.argtypes = [*many.argtypes[1:], ctypes.c_void_p]  # + Compact[count]
        compact_many.restype = ctypes.c_int
        natives[rule] = Native(one, many, compact, compact_many, block)
    return natives


def available() -> bool:
    """Whether the native kernels are built and loaded (builds them on first call)."""
    return _library() is not None


def rules() -> tuple[str, ...]:
    """The rules the loaded library holds (empty if it is unavailable)."""
    return tuple(_library() or ())


@dataclass(frozen=True)
class Kernel:
    """A rule's native kernel with its own options: ``fields`` are the values of the rule's
    flags and scalars in its block, by name (the common fields are filled from the group's
    lr and regularization); ``dtypes`` are the parameter dtypes it may run."""

    rule: str
    fields: dict[str, Any]
    dtypes: frozenset[torch.dtype] = field(default=frozenset(DTYPE_CODES))


class Prepared:
    """A kernel's block filled for one group's options and regularization (``l2``: coupled,
    ``weight_decay``: decoupled, ``l1``); :meth:`at_lr` sets the step's lr and what it scales,
    ``decay = 1 - lr * weight_decay`` and ``l1lr = l1 * lr``. Built once per option set."""

    def __init__(self, kernel: Kernel, *, l2: float, weight_decay: float, l1: float) -> None:
        natives = _library() or {}
        if kernel.rule not in natives:
            raise LookupError(
                f"the native kernels hold no rule {kernel.rule!r} (they hold: "
                f"{', '.join(natives)}): declare it with NNOPT_RULE in cpu_kernels.cpp"
            )
        native = natives[kernel.rule]
        self.kernel, self.native = kernel, native
        self.rule = kernel.rule
        self.pointers = blocks.pointer_names(native.block)
        self.scalars = blocks.scalar_names(native.block)  # (of the pointers: float32 scalars)
        self.codes = {dtype: DTYPE_CODES[dtype] for dtype in kernel.dtypes}
        self.weight_decay, self.l1 = float(weight_decay), float(l1)
        self.lr: float | None = None
        common = dict(
            p=None, g=None, l2_on=bool(l2), l1_on=bool(l1), l2=float(l2), lr=0.0, step=0.0,
            decay=1.0, l1lr=0.0,
        )  # fmt: skip
        self.block = blocks.fill(
            native.block, {**common, **dict.fromkeys(self.pointers), **kernel.fields}
        )
        self.address = ctypes.byref(self.block)

    def set_fields(self, fields: dict[str, Any]) -> None:
        """Write the rule's per-step fields (``Optimizer.step_fields``) into the block (a
        name the block lacks raises: ctypes would keep it as a Python attribute, unread)."""
        block = self.block
        for name, value in fields.items():
            if name not in blocks.field_names(type(block)):
                raise TypeError(f"{self.rule}'s block has no field {name!r}")
            setattr(block, name, value)

    def at_lr(self, lr: float) -> Prepared:
        if lr != self.lr:  # (three ctypes writes saved on most steps)
            block = self.block
            block.lr = self.lr = lr
            block.decay = 1.0 - lr * self.weight_decay
            block.l1lr = self.l1 * lr
        return self


def _layout(param: Tensor, *others: Tensor | None) -> int | None:
    """The dtype code if every tensor is a contiguous CPU tensor like ``param``, else None."""
    code = DTYPE_CODES.get(param.dtype)
    if code is None or param.device.type != "cpu" or not param.is_contiguous():
        return None
    n = param.numel()
    for t in others:
        if t is None:
            continue
        if (
            t.dtype != param.dtype
            or t.device != param.device
            or not t.is_contiguous()
            or t.numel() != n
        ):
            return None
    return code


def is_scalar(t: Tensor | None) -> bool:
    """Whether ``t`` is what a ``scalar(name)`` field points to: one float32 on the CPU."""
    return t is not None and t.dtype == torch.float32 and t.is_cpu and t.numel() == 1


def run_one(
    prepared: Prepared, param: Tensor, grad: Tensor, state: dict[str, Tensor], step: int
) -> bool:
    """Run the kernel over one tensor at step ``step``; False (nothing touched) if it cannot
    run these tensors. ``state`` holds the state the kernel's options use, by field name
    (its ``scalars`` one-element float32 CPU tensors, the others laid out as ``param``)."""
    if param.dtype not in prepared.codes:
        return False
    tensors = [state.get(name) for name in prepared.pointers]
    scalars = prepared.scalars
    if scalars:
        shaped = [
            t for name, t in zip(prepared.pointers, tensors, strict=True) if name not in scalars
        ]
        if not all(is_scalar(state.get(name)) for name in scalars):
            return False
    else:
        shaped = tensors
    code = _layout(param, grad, *shaped)
    if code is None:
        return False
    block = prepared.block
    block.p, block.g, block.step = param.data_ptr(), grad.data_ptr(), step
    for name, t in zip(prepared.pointers, tensors, strict=True):
        setattr(block, name, None if t is None else t.data_ptr())
    threads = torch.get_num_threads()
    return prepared.native.one(code, param.numel(), threads, prepared.address) == 0


def run_many(prepared: Prepared, code: int, sizes: array, table: array, step_code: int) -> None:
    """Run the kernel over many tensors of one dtype in one call.

    ``sizes`` holds each tensor's element count (int64); ``table`` one row per tensor: the
    data pointers of ``p``, ``g`` and the state in ``prepared.pointers`` order (0 for state the
    options leave unused), then its step counter's (dtype ``step_code`` of ``STEP_CODES``; 0
    for optimizers without one), which the kernel increments before the update. The caller
    has checked every tensor (contiguous CPU, this dtype, as many elements as its parameter).
    """
    status = prepared.native.many(
        code,
        len(sizes),
        torch.get_num_threads(),
        prepared.address,
        sizes.buffer_info()[0],
        table.buffer_info()[0],
        step_code,
    )
    if status != 0:
        raise RuntimeError(f"nnopt_{prepared.rule}_many failed (dtype code {code}): a bug")


def step_one(
    rule: str,
    param: Tensor,
    grad: Tensor,
    state: dict[str, Tensor | None],
    *,
    lr: float,
    step: int = 1,
    l2: float = 0.0,
    weight_decay: float = 0.0,
    l1: float = 0.0,
    **fields: Any,
) -> bool:
    """``rule``'s kernel on one tensor with its fields given by name (the kernel tests' call)."""
    if not available():
        return False
    kernel = Kernel(rule, fields)
    prepared = Prepared(kernel, l2=l2, weight_decay=weight_decay, l1=l1).at_lr(lr)
    present = {name: t for name, t in state.items() if t is not None}
    return run_one(prepared, param, grad, present, step)
