"""Update rules: small pure functions over tensors.

Each rule updates ``param`` and its state tensors in place from ``grad`` and returns its
preconditioner ``d``: the per-coordinate divisor of the learning rate (1.0 for plain gradient
descent, a tensor for adaptive rules). The optimizer base uses ``eta / d`` as the step size of
the L1 proximal step; nothing extra is computed when L1 is off.

A rule knows nothing of parameter groups, flat buffers or devices: the same function runs on
one tensor or on a flat buffer holding millions of parameters.

Notation: theta the parameters, g the gradient, eta the learning rate, t the step (from 1).

Hyperparameters are Python numbers, except in a differentiable step (``differentiable=True``),
where one that requires grad (a Tensor lr, beta or weight decay) stays a Tensor so that
autograd sees it: the ``_add_``-style helpers below take either, and a number takes torch's
fused-scalar op, so the numbers of the ordinary step do not change.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

Divisor = float | Tensor
Scalar = float | Tensor  # a Tensor only where a differentiable step needs its gradient


def _add_(target: Tensor, x: Tensor, alpha: Scalar) -> Tensor:
    """target <- target + alpha * x."""
    if isinstance(alpha, Tensor):
        return target.add_(x * alpha)
    return target.add_(x, alpha=alpha)


def _addcmul_(target: Tensor, x: Tensor, y: Tensor, value: Scalar) -> Tensor:
    """target <- target + value * x * y."""
    if isinstance(value, Tensor):
        return target.add_(x * y * value)
    return target.addcmul_(x, y, value=value)


def _addcdiv_(target: Tensor, x: Tensor, y: Tensor, value: Scalar) -> Tensor:
    """target <- target + value * x / y."""
    if isinstance(value, Tensor):
        return target.add_(x / y * value)
    return target.addcdiv_(x, y, value=value)


def _plus_(x: Tensor, eps: float) -> Tensor:
    """x + eps, in place, except in a differentiable step: there x is a square root's output,
    which autograd keeps for the backward pass."""
    return x.add(eps) if torch.is_grad_enabled() else x.add_(eps)


def _sqrt(x: Scalar) -> Scalar:
    return x.sqrt() if isinstance(x, Tensor) else math.sqrt(x)


def sgd_(param: Tensor, grad: Tensor, *, lr: Scalar) -> Divisor:
    """Plain gradient descent: theta <- theta - eta * g."""
    _add_(param, grad, -lr)
    return 1.0


def momentum_(
    param: Tensor,
    grad: Tensor,
    buf: Tensor,
    *,
    lr: Scalar,
    momentum: float,
    nesterov: bool,
    dampening: float = 0.0,
    first: bool = False,
) -> Divisor:
    """Heavy-ball or Nesterov momentum (torch.optim.SGD's convention).

    b <- g  on the buffer's first step, else  b <- mu * b + (1 - tau) * g   (tau: dampening)
    theta <- theta - eta * b                 (heavy ball)
    theta <- theta - eta * (g + mu * b)      (Nesterov)
    """
    if first:
        buf.copy_(grad)
    else:
        buf.mul_(momentum).add_(grad, alpha=1.0 - dampening)
    if nesterov:
        _add_(param, grad.add(buf, alpha=momentum), -lr)
    else:
        _add_(param, buf, -lr)
    return 1.0


def adagrad_(param: Tensor, grad: Tensor, sum_sq: Tensor, *, lr: Scalar, eps: float) -> Divisor:
    """AdaGrad (Duchi et al. 2011).

    G <- G + g^2
    theta <- theta - eta * g / (sqrt(G) + eps)
    """
    sum_sq.addcmul_(grad, grad, value=1.0)
    std = _plus_(sum_sq.sqrt(), eps)
    _addcdiv_(param, grad, std, -lr)
    return std


def rmsprop_(
    param: Tensor,
    grad: Tensor,
    square_avg: Tensor,
    *,
    lr: Scalar,
    rho: float,
    eps: float,
    eps_inside_sqrt: bool,
    grad_avg: Tensor | None = None,
    momentum_buffer: Tensor | None = None,
    momentum: float = 0.0,
) -> Divisor:
    """RMSProp (Tieleman & Hinton 2012), the seed's form and torch's.

    E <- rho * E + (1 - rho) * g^2
    centered:  gbar <- rho * gbar + (1 - rho) * g,   S = E - gbar^2;   otherwise S = E
    d = sqrt(S + eps)   (the seed's form, eps_inside_sqrt=True)
    d = sqrt(S) + eps   (torch.optim.RMSprop, eps_inside_sqrt=False)
    no momentum:  theta <- theta - eta * g / d
    momentum mu:  b <- mu * b + g / d;   theta <- theta - eta * b
    """
    square_avg.mul_(rho).addcmul_(grad, grad, value=1.0 - rho)
    if grad_avg is not None:
        grad_avg.lerp_(grad, 1.0 - rho)
        spread = square_avg.addcmul(grad_avg, grad_avg, value=-1.0)
    else:
        spread = square_avg.clone()
    denom = spread.add_(eps).sqrt_() if eps_inside_sqrt else _plus_(spread.sqrt_(), eps)
    if momentum_buffer is not None and momentum > 0:
        momentum_buffer.mul_(momentum).addcdiv_(grad, denom)
        _add_(param, momentum_buffer, -lr)
    else:
        _addcdiv_(param, grad, denom, -lr)
    return denom


def adam_(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    *,
    step: int,
    lr: Scalar,
    beta1: Scalar,
    beta2: Scalar,
    eps: float,
    max_exp_avg_sq: Tensor | None = None,
) -> Divisor:
    """Adam (Kingma & Ba 2015) with the seed's bias correction; AMSGrad when a max buffer is given.

    m <- beta1 * m + (1 - beta1) * g
    v <- beta2 * v + (1 - beta2) * g^2
    m_hat = m / (1 - beta1^t),   v_hat = v / (1 - beta2^t)     (AMSGrad: v_max <- max(v_max, v))
    theta <- theta - eta * m_hat / (sqrt(v_hat) + eps)
    """
    exp_avg.lerp_(grad, 1.0 - beta1)
    _addcmul_(exp_avg_sq.mul_(beta2), grad, grad, 1.0 - beta2)
    bias_correction1 = 1.0 - beta1**step
    bias_correction2_sqrt = _sqrt(1.0 - beta2**step)
    if max_exp_avg_sq is not None:
        if torch.is_grad_enabled():  # a differentiable step: out= is not differentiable
            max_exp_avg_sq.copy_(torch.maximum(max_exp_avg_sq.clone(), exp_avg_sq))
        else:
            torch.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        second = max_exp_avg_sq
    else:
        second = exp_avg_sq
    denom = (second.sqrt() / bias_correction2_sqrt).add_(eps)
    _addcdiv_(param, exp_avg, denom, -lr / bias_correction1)
    return denom


def lion_(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    *,
    lr: Scalar,
    beta1: Scalar,
    beta2: Scalar,
) -> Divisor:
    """Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2).

    c = beta1 * m + (1 - beta1) * g
    theta <- theta - eta * sign(c)
    m <- beta2 * m + (1 - beta2) * g
    Every coordinate moves by eta exactly (d = 1); the paper's weight decay is decoupled
    (theta <- theta (1 - eta wd), applied before by the base).
    """
    interpolated = _add_(exp_avg.mul(beta1), grad, 1.0 - beta1)
    _add_(param, interpolated.sign_(), -lr)
    _add_(exp_avg.mul_(beta2), grad, 1.0 - beta2)
    return 1.0


# Regularization, shared by every rule and applied by the optimizer base.


def decoupled_decay_(param: Tensor, *, lr: Scalar, weight_decay: Scalar) -> None:
    """Decoupled weight decay (Loshchilov & Hutter 2019, AdamW): theta <- theta * (1 - eta * wd)."""
    param.mul_(1.0 - lr * weight_decay)


def with_l2(grad: Tensor, param: Tensor, *, l2: Scalar) -> Tensor:
    """Coupled L2: the gradient of l2/2 * ||theta||^2 added to g (torch's ``weight_decay``).

    g <- g + l2 * theta   (a new tensor: the user's .grad is never modified)
    """
    if isinstance(l2, Tensor):  # differentiable: param is updated in place after this
        return grad + param.clone() * l2
    return grad.add(param, alpha=l2)


def soft_threshold_(param: Tensor, threshold: Divisor) -> None:
    """L1 proximal step: theta <- sign(theta) * max(|theta| - tau, 0), tau = l1 * eta / d.

    With the plain gradient step size this is ISTA, so full-batch SGD converges to the Lasso
    solution with exact zeros. For adaptive rules tau is per coordinate (the rule's own
    step size eta / d), which is the proximal step in the metric the rule preconditions with.
    """
    # A differentiable step: autograd keeps what abs and sign read, so read a copy.
    source = param.clone() if torch.is_grad_enabled() else param
    shrunk = source.abs().sub_(threshold).clamp_(min=0.0)
    param.copy_(shrunk.mul_(source.sign()))
