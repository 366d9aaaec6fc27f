"""Python side of the native CPU kernels: one function per rule, each one pass over memory.

Every function updates ``param`` and its state in place exactly as the eager composition in
``nnopt.optim.dispatch.apply`` does (formulas in ``nnopt.optim.rules``)::

    g <- g + l2 * theta                          coupled L2 (the user's grad is not written)
    theta <- theta * (1 - eta * weight_decay)    decoupled decay
    theta, state <- rule(theta, g, state)        preconditioner d
    theta <- sign(theta) * max(|theta| - l1 * eta / d, 0)    L1 proximal step

and returns True, or returns False without touching anything when the kernels cannot run
these tensors (library unavailable, not on the CPU, not contiguous, mixed or unsupported
dtypes: float32, float64 and bfloat16 are supported). The caller then runs the eager rule.

Each kernel takes one parameter block (``blocks.py``), filled here by field name; the library's
blocks are checked against that description when it is loaded. A rule's options become a
:class:`Kernel` (its block's scalars, and which state tensor feeds each pointer field), run
on one tensor (``run_one``) or on a whole param group in one call (``run_many``).
"""

from __future__ import annotations

import ctypes
import math
from array import array
from dataclasses import dataclass
from functools import cache

import torch
from torch import Tensor

from nnopt.optim.kernels import blocks, build

DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.bfloat16: 2}


@cache
def _functions() -> dict[str, tuple[ctypes._CFuncPtr, type[ctypes.Structure]]] | None:
    """Rule (and ``<rule>_many``) -> (kernel, its block), once the library's blocks match
    ``blocks.BLOCKS``."""
    lib = build.load()
    if lib is None:
        return None
    mismatch = blocks.check(lib, blocks.BLOCKS)
    if mismatch is not None:
        return build.fail(mismatch)
    functions = {}
    for rule, block in blocks.BLOCKS.items():
        fn = getattr(lib, f"nnopt_{rule}")
        fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int, ctypes.POINTER(block)]
        fn.restype = ctypes.c_int
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
        functions[rule] = (fn, block)
        functions[f"{rule}_many"] = (many, block)
    return functions


def available() -> bool:
    """Whether the native kernels are built and loaded (builds them on first call)."""
    return _functions() is not None


@dataclass(frozen=True)
class Kernel:
    """One rule's native kernel with its options fixed: what a param group shares.

    ``scalars`` are the block's flags and scalars; ``columns`` name the state tensor behind
    each pointer field after ``p`` and ``g``, in the block's order (None: the options leave that
    field unused). With ``reads_step`` the scalars leave out the step: the many-tensor kernel
    derives what it needs from each tensor's counter (Adam's bias corrections); ``dtypes``
    are the parameter dtypes it may run.
    """

    rule: str
    scalars: dict[str, object]
    columns: tuple[str | None, ...]
    reads_step: bool = False
    dtypes: frozenset[torch.dtype] = frozenset(DTYPE_CODES)


def _pointer_names(block: type[ctypes.Structure]) -> list[str]:
    return [name for name, ctype in block._fields_ if ctype is blocks.PTR]


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


def run_one(kernel: Kernel, param: Tensor, grad: Tensor, state: dict[str, Tensor]) -> bool:
    """Run ``kernel`` over one tensor; False (nothing touched) if it cannot run these tensors.

    ``kernel.reads_step`` must be off here: the caller folds the step into the scalars.
    """
    fns = _functions()
    if fns is None or param.dtype not in kernel.dtypes:
        return False
    tensors = [state.get(key) if key else None for key in kernel.columns]
    if any(t is None for key, t in zip(kernel.columns, tensors, strict=True) if key):
        return False
    code = _layout(param, grad, *tensors)
    if code is None:
        return False
    fn, block = fns[kernel.rule]
    pointers = dict(zip(_pointer_names(block), (param, grad, *tensors), strict=True))
    fields = {name: None if t is None else t.data_ptr() for name, t in pointers.items()}
    args = blocks.fill(block, {**fields, **kernel.scalars})
    return fn(code, param.numel(), torch.get_num_threads(), ctypes.byref(args)) == 0


# Step counters the many-tensor kernels read: float32 or float64 scalars (options.step_dtype).
STEP_CODES = {torch.float32: 0, torch.float64: 1}


def run_many(kernel: Kernel, code: int, sizes: array, table: array, step_code: int = 0) -> None:
    """Run ``kernel`` over many tensors of one dtype in one call.

    ``sizes`` holds each tensor's element count (int64); ``table`` one row per tensor: the
    data pointers of ``p``, ``g`` and ``kernel.columns`` (0 for None), then its step counter's
    (dtype ``step_code`` of ``STEP_CODES``; 0 for optimizers without one), which the kernel
    increments before the update. The caller has checked every tensor (contiguous CPU, this
    dtype, as many elements as its parameter) and that the library is available.
    """
    fn, block = _functions()[f"{kernel.rule}_many"]
    args = blocks.fill(block, {**dict.fromkeys(_pointer_names(block)), **kernel.scalars})
    status = fn(
        code,
        len(sizes),
        torch.get_num_threads(),
        ctypes.byref(args),
        sizes.buffer_info()[0],
        table.buffer_info()[0],
        step_code,
    )
    if status != 0:
        raise RuntimeError(f"nnopt_{kernel.rule}_many failed (dtype code {code}): a bug in nnopt")


def _regularization(lr: float, l2: float, weight_decay: float, l1: float) -> dict:
    """The fields every block has: l2_on, l1_on, l2, decay factor, l1 * lr."""
    return dict(
        l2_on=bool(l2),
        l1_on=bool(l1),
        l2=float(l2),
        decay=1.0 - lr * weight_decay,
        l1lr=float(l1) * lr,
    )


def sgd(
    *,
    lr: float,
    momentum: float,
    nesterov: bool,
    l2: float = 0.0,
    weight_decay: float = 0.0,
    l1: float = 0.0,
) -> Kernel:
    """Gradient descent, heavy-ball or Nesterov momentum (``rules.sgd_``/``rules.momentum_``).

    b <- mu b + g;  theta <- theta - eta b  (Nesterov: theta - eta (g + mu b));  d = 1.
    """
    on = momentum > 0
    scalars = dict(
        momentum_on=on,
        nesterov=bool(nesterov),
        lr=lr,
        mu=momentum,
        **_regularization(lr, l2, weight_decay, l1),
    )
    return Kernel("sgd", scalars, ("momentum_buffer" if on else None,))


def lion(
    *,
    lr: float,
    beta1: float,
    beta2: float,
    l2: float = 0.0,
    weight_decay: float = 0.0,
    l1: float = 0.0,
) -> Kernel:
    """Lion (``rules.lion_``): theta <- theta - eta sign(b1 m + (1 - b1) g);
    m <- b2 m + (1 - b2) g;  d = 1. float32 and float64 only: in bfloat16 the kernel's float
    accumulation could flip a sign the eager rule's rounding keeps (a step of 2 lr)."""
    scalars = dict(lr=lr, beta1=beta1, beta2=beta2, **_regularization(lr, l2, weight_decay, l1))
    return Kernel("lion", scalars, ("exp_avg",), dtypes=frozenset((torch.float32, torch.float64)))


def adagrad(
    *, lr: float, eps: float, l2: float = 0.0, weight_decay: float = 0.0, l1: float = 0.0
) -> Kernel:
    """AdaGrad (``rules.adagrad_``): G <- G + g^2;  d = sqrt(G) + eps;  theta <- theta - eta g/d."""
    scalars = dict(lr=lr, eps=eps, **_regularization(lr, l2, weight_decay, l1))
    return Kernel("adagrad", scalars, ("sum",))


def rmsprop(
    *,
    lr: float,
    rho: float,
    eps: float,
    eps_inside_sqrt: bool,
    centered: bool = False,
    momentum: float = 0.0,
    l2: float = 0.0,
    weight_decay: float = 0.0,
    l1: float = 0.0,
) -> Kernel:
    """RMSProp, both eps forms, centered and momentum (``rules.rmsprop_``).

    E <- rho E + (1 - rho) g^2;  centered: gbar <- lerp(gbar, g, 1 - rho), S = E - gbar^2
    d = sqrt(S + eps) (seed) or sqrt(S) + eps (torch)
    theta <- theta - eta g / d;  momentum: b <- mu b + g / d, theta <- theta - eta b.
    """
    on = momentum > 0
    scalars = dict(
        centered=bool(centered),
        momentum_on=on,
        eps_inside_sqrt=bool(eps_inside_sqrt),
        lr=lr,
        rho=rho,
        eps=eps,
        mu=momentum,
        **_regularization(lr, l2, weight_decay, l1),
    )
    columns = ("square_avg", "grad_avg" if centered else None, "momentum_buffer" if on else None)
    return Kernel("rmsprop", scalars, columns)


def adam(
    *,
    step: int | None,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    amsgrad: bool = False,
    l2: float = 0.0,
    weight_decay: float = 0.0,
    l1: float = 0.0,
) -> Kernel:
    """Adam / AdamW / AMSGrad (``rules.adam_``).

    m <- lerp(m, g, 1 - b1);  v <- b2 v + (1 - b2) g^2  (AMSGrad: v_max <- max(v_max, v))
    d = sqrt(v) / sqrt(1 - b2^t) + eps;  theta <- theta - eta / (1 - b1^t) * m / d.
    ``step=None``: each tensor's t is read from its step counter (``run_many``).
    """
    scalars = dict(
        amsgrad=bool(amsgrad),
        lr=lr,
        beta1=beta1,
        beta2=beta2,
        # The many-tensor kernel computes these two per tensor, with the same formulas.
        bc1=0.0 if step is None else 1.0 - beta1**step,
        bc2_sqrt=0.0 if step is None else math.sqrt(1.0 - beta2**step),
        eps=eps,
        **_regularization(lr, l2, weight_decay, l1),
    )
    columns = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq" if amsgrad else None)
    return Kernel("adam", scalars, columns, reads_step=step is None)


# --- One tensor, by name: the functions the kernel tests call --------------------------------


def sgd_(param: Tensor, grad: Tensor, momentum_buffer: Tensor | None, **options) -> bool:
    """``sgd`` (same options) on one tensor."""
    return run_one(sgd(**options), param, grad, {"momentum_buffer": momentum_buffer})


def adagrad_(param: Tensor, grad: Tensor, sum_sq: Tensor, **options) -> bool:
    """``adagrad`` (same options) on one tensor."""
    return run_one(adagrad(**options), param, grad, {"sum": sum_sq})


def rmsprop_(
    param: Tensor,
    grad: Tensor,
    square_avg: Tensor,
    *,
    grad_avg: Tensor | None = None,
    momentum_buffer: Tensor | None = None,
    **options,
) -> bool:
    """``rmsprop`` (same options; centered when ``grad_avg`` is given) on one tensor."""
    kernel = rmsprop(centered=grad_avg is not None, **options)
    state = {"square_avg": square_avg, "grad_avg": grad_avg, "momentum_buffer": momentum_buffer}
    return run_one(kernel, param, grad, state)


def adam_(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    *,
    max_exp_avg_sq: Tensor | None = None,
    **options,
) -> bool:
    """``adam`` (same options; AMSGrad when ``max_exp_avg_sq`` is given) on one tensor."""
    kernel = adam(amsgrad=max_exp_avg_sq is not None, **options)
    state = {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq, "max_exp_avg_sq": max_exp_avg_sq}
    return run_one(kernel, param, grad, state)
