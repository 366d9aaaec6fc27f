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
blocks are checked against that description when it is loaded.
"""

from __future__ import annotations

import ctypes
import math
from functools import cache

import torch
from torch import Tensor

from nnopt.optim.kernels import blocks, build

DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.bfloat16: 2}


@cache
def _functions() -> dict[str, tuple[ctypes._CFuncPtr, type[ctypes.Structure]]] | None:
    """Rule -> (kernel, its block), once the library's blocks match ``blocks.BLOCKS``."""
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
        functions[rule] = (fn, block)
    return functions


def available() -> bool:
    """Whether the native kernels are built and loaded (builds them on first call)."""
    return _functions() is not None


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


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _regularization(lr: float, l2: float, weight_decay: float, l1: float) -> dict:
    """The fields every block has: l2_on, l1_on, l2, decay factor, l1 * lr."""
    return dict(
        l2_on=bool(l2),
        l1_on=bool(l1),
        l2=float(l2),
        decay=1.0 - lr * weight_decay,
        l1lr=float(l1) * lr,
    )


def _run(kernel: tuple, code: int, param: Tensor, **fields: object) -> bool:
    """Fill the ``(kernel, block)`` pair's block by name and run it over ``param``."""
    fn, block = kernel
    args = blocks.fill(block, fields)
    return fn(code, param.numel(), torch.get_num_threads(), ctypes.byref(args)) == 0


def sgd_(
    param: Tensor,
    grad: Tensor,
    momentum_buffer: Tensor | None,
    *,
    lr: float,
    momentum: float,
    nesterov: bool,
    l2: float = 0.0,
    weight_decay: float = 0.0,
    l1: float = 0.0,
) -> bool:
    """Gradient descent, heavy-ball or Nesterov momentum (``rules.sgd_``/``rules.momentum_``).

    b <- mu b + g;  theta <- theta - eta b  (Nesterov: theta - eta (g + mu b));  d = 1.
    """
    fns = _functions()
    on = momentum > 0
    code = _layout(param, grad, momentum_buffer if on else None)
    if fns is None or code is None or (on and momentum_buffer is None):
        return False
    return _run(
        fns["sgd"],
        code,
        param,
        p=param.data_ptr(),
        g=grad.data_ptr(),
        buf=_ptr(momentum_buffer) if on else None,
        momentum_on=on,
        nesterov=bool(nesterov),
        lr=lr,
        mu=momentum,
        **_regularization(lr, l2, weight_decay, l1),
    )


def adagrad_(
    param: Tensor,
    grad: Tensor,
    sum_sq: Tensor,
    *,
    lr: float,
    eps: float,
    l2: float = 0.0,
    weight_decay: float = 0.0,
    l1: float = 0.0,
) -> bool:
    """AdaGrad (``rules.adagrad_``): G <- G + g^2;  d = sqrt(G) + eps;  theta <- theta - eta g/d."""
    fns = _functions()
    code = _layout(param, grad, sum_sq)
    if fns is None or code is None:
        return False
    return _run(
        fns["adagrad"],
        code,
        param,
        p=param.data_ptr(),
        g=grad.data_ptr(),
        sum=sum_sq.data_ptr(),
        lr=lr,
        eps=eps,
        **_regularization(lr, l2, weight_decay, l1),
    )


def rmsprop_(
    param: Tensor,
    grad: Tensor,
    square_avg: Tensor,
    *,
    lr: float,
    rho: float,
    eps: float,
    eps_inside_sqrt: bool,
    grad_avg: Tensor | None = None,
    momentum_buffer: Tensor | None = None,
    momentum: float = 0.0,
    l2: float = 0.0,
    weight_decay: float = 0.0,
    l1: float = 0.0,
) -> bool:
    """RMSProp, both eps forms, centered and momentum (``rules.rmsprop_``).

    E <- rho E + (1 - rho) g^2;  centered: gbar <- lerp(gbar, g, 1 - rho), S = E - gbar^2
    d = sqrt(S + eps) (seed) or sqrt(S) + eps (torch)
    theta <- theta - eta g / d;  momentum: b <- mu b + g / d, theta <- theta - eta b.
    """
    fns = _functions()
    on = momentum_buffer is not None and momentum > 0
    code = _layout(param, grad, square_avg, grad_avg, momentum_buffer if on else None)
    if fns is None or code is None:
        return False
    return _run(
        fns["rmsprop"],
        code,
        param,
        p=param.data_ptr(),
        g=grad.data_ptr(),
        square_avg=square_avg.data_ptr(),
        grad_avg=_ptr(grad_avg),
        buf=_ptr(momentum_buffer) if on else None,
        centered=grad_avg is not None,
        momentum_on=on,
        eps_inside_sqrt=bool(eps_inside_sqrt),
        lr=lr,
        rho=rho,
        eps=eps,
        mu=momentum,
        **_regularization(lr, l2, weight_decay, l1),
    )


def adam_(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    *,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    max_exp_avg_sq: Tensor | None = None,
    l2: float = 0.0,
    weight_decay: float = 0.0,
    l1: float = 0.0,
) -> bool:
    """Adam / AdamW / AMSGrad (``rules.adam_``).

    m <- lerp(m, g, 1 - b1);  v <- b2 v + (1 - b2) g^2  (AMSGrad: v_max <- max(v_max, v))
    d = sqrt(v) / sqrt(1 - b2^t) + eps;  theta <- theta - eta / (1 - b1^t) * m / d.
    """
    fns = _functions()
    code = _layout(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq)
    if fns is None or code is None:
        return False
    return _run(
        fns["adam"],
        code,
        param,
        p=param.data_ptr(),
        g=grad.data_ptr(),
        exp_avg=exp_avg.data_ptr(),
        exp_avg_sq=exp_avg_sq.data_ptr(),
        max_exp_avg_sq=_ptr(max_exp_avg_sq),
        amsgrad=max_exp_avg_sq is not None,
        lr=lr,
        beta1=beta1,
        beta2=beta2,
        bc1=1.0 - beta1**step,
        bc2_sqrt=math.sqrt(1.0 - beta2**step),
        eps=eps,
        **_regularization(lr, l2, weight_decay, l1),
    )
