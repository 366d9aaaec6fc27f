"""Python side of the native CPU kernels: one function per rule, each one pass over memory.

Every function updates ``param`` and its state in place exactly as the eager composition in
``Optimizer._apply`` does (formulas in ``nnopt.optim.rules``)::

    g <- g + l2 * theta                          coupled L2 (the user's grad is not written)
    theta <- theta * (1 - eta * weight_decay)    decoupled decay
    theta, state <- rule(theta, g, state)        preconditioner d
    theta <- sign(theta) * max(|theta| - l1 * eta / d, 0)    L1 proximal step

and returns True, or returns False without touching anything when the kernels cannot run
these tensors (library unavailable, not on the CPU, not contiguous, mixed or unsupported
dtypes: float32, float64 and bfloat16 are supported). The caller then runs the eager rule.
"""

from __future__ import annotations

import ctypes
import math
from functools import cache

import torch
from torch import Tensor

from nnopt.optim.kernels import build

DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.bfloat16: 2}

_P = ctypes.c_void_p
_I = ctypes.c_int
_N = ctypes.c_int64
_D = ctypes.c_double
_SIGNATURES = {
    "nnopt_sgd": [_I, _P, _P, _P, _N, _I, _I, _I, _I, _I, _D, _D, _D, _D, _D],
    "nnopt_adagrad": [_I, _P, _P, _P, _N, _I, _I, _I, _D, _D, _D, _D, _D],
    "nnopt_rmsprop": [_I, _P, _P, _P, _P, _P, _N, _I, _I, _I, _I, _I, _I]
    + [_D, _D, _D, _D, _D, _D, _D],
    "nnopt_adam": [_I, _P, _P, _P, _P, _P, _N, _I, _I, _I, _I] + [_D] * 9,
}


@cache
def _functions() -> dict[str, ctypes._CFuncPtr] | None:
    lib = build.load()
    if lib is None:
        return None
    functions = {}
    for name, argtypes in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes = argtypes
        fn.restype = ctypes.c_int
        functions[name] = fn
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


def _threads() -> int:
    return torch.get_num_threads()


def _regularization(lr: float, l2: float, weight_decay: float, l1: float) -> tuple:
    """(l2_on, l1_on, l2, decay factor, l1 * lr): the scalars every kernel takes."""
    return bool(l2), bool(l1), float(l2), 1.0 - lr * weight_decay, float(l1) * lr


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
    l2_on, l1_on, l2_, decay, l1lr = _regularization(lr, l2, weight_decay, l1)
    status = fns["nnopt_sgd"](
        code,
        param.data_ptr(),
        grad.data_ptr(),
        _ptr(momentum_buffer) if on else None,
        param.numel(),
        _threads(),
        on,
        bool(nesterov),
        l2_on,
        l1_on,
        lr,
        momentum,
        l2_,
        decay,
        l1lr,
    )
    return status == 0


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
    l2_on, l1_on, l2_, decay, l1lr = _regularization(lr, l2, weight_decay, l1)
    status = fns["nnopt_adagrad"](
        code,
        param.data_ptr(),
        grad.data_ptr(),
        sum_sq.data_ptr(),
        param.numel(),
        _threads(),
        l2_on,
        l1_on,
        lr,
        eps,
        l2_,
        decay,
        l1lr,
    )
    return status == 0


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
    l2_on, l1_on, l2_, decay, l1lr = _regularization(lr, l2, weight_decay, l1)
    status = fns["nnopt_rmsprop"](
        code,
        param.data_ptr(),
        grad.data_ptr(),
        square_avg.data_ptr(),
        _ptr(grad_avg),
        _ptr(momentum_buffer) if on else None,
        param.numel(),
        _threads(),
        grad_avg is not None,
        on,
        bool(eps_inside_sqrt),
        l2_on,
        l1_on,
        lr,
        rho,
        eps,
        momentum,
        l2_,
        decay,
        l1lr,
    )
    return status == 0


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
    l2_on, l1_on, l2_, decay, l1lr = _regularization(lr, l2, weight_decay, l1)
    status = fns["nnopt_adam"](
        code,
        param.data_ptr(),
        grad.data_ptr(),
        exp_avg.data_ptr(),
        exp_avg_sq.data_ptr(),
        _ptr(max_exp_avg_sq),
        param.numel(),
        _threads(),
        max_exp_avg_sq is not None,
        l2_on,
        l1_on,
        lr,
        beta1,
        beta2,
        1.0 - beta1**step,
        math.sqrt(1.0 - beta2**step),
        eps,
        l2_,
        decay,
        l1lr,
    )
    return status == 0
