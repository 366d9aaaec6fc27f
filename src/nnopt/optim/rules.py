"""Update rules: small pure functions over tensors.

Each rule updates ``param`` and its state tensors in place from ``grad`` and returns its
preconditioner ``d``: the per-coordinate divisor of the learning rate (1.0 for plain gradient
descent, a tensor for adaptive rules). The optimizer base uses ``eta / d`` as the step size of
the L1 proximal step; nothing extra is computed when L1 is off.

A rule knows nothing of parameter groups, flat buffers or devices: the same function runs on
one tensor or on a flat buffer holding millions of parameters.

Notation: theta the parameters, g the gradient, eta the learning rate, t the step (from 1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

Divisor = float | Tensor


def sgd_(param: Tensor, grad: Tensor, *, lr: float) -> Divisor:
    """Plain gradient descent: theta <- theta - eta * g."""
    param.add_(grad, alpha=-lr)
    return 1.0


def momentum_(
    param: Tensor,
    grad: Tensor,
    buf: Tensor,
    *,
    lr: float,
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
        param.add_(grad.add(buf, alpha=momentum), alpha=-lr)
    else:
        param.add_(buf, alpha=-lr)
    return 1.0


def adagrad_(param: Tensor, grad: Tensor, sum_sq: Tensor, *, lr: float, eps: float) -> Divisor:
    """AdaGrad (Duchi et al. 2011).

    G <- G + g^2
    theta <- theta - eta * g / (sqrt(G) + eps)
    """
    sum_sq.addcmul_(grad, grad, value=1.0)
    std = sum_sq.sqrt().add_(eps)
    param.addcdiv_(grad, std, value=-lr)
    return std


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
    denom = spread.add_(eps).sqrt_() if eps_inside_sqrt else spread.sqrt_().add_(eps)
    if momentum_buffer is not None and momentum > 0:
        momentum_buffer.mul_(momentum).addcdiv_(grad, denom)
        param.add_(momentum_buffer, alpha=-lr)
    else:
        param.addcdiv_(grad, denom, value=-lr)
    return denom


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
) -> Divisor:
    """Adam (Kingma & Ba 2015) with the seed's bias correction; AMSGrad when a max buffer is given.

    m <- beta1 * m + (1 - beta1) * g
    v <- beta2 * v + (1 - beta2) * g^2
    m_hat = m / (1 - beta1^t),   v_hat = v / (1 - beta2^t)     (AMSGrad: v_max <- max(v_max, v))
    theta <- theta - eta * m_hat / (sqrt(v_hat) + eps)
    """
    exp_avg.lerp_(grad, 1.0 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
    bias_correction1 = 1.0 - beta1**step
    bias_correction2_sqrt = math.sqrt(1.0 - beta2**step)
    if max_exp_avg_sq is not None:
        torch.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        second = max_exp_avg_sq
    else:
        second = exp_avg_sq
    denom = (second.sqrt() / bias_correction2_sqrt).add_(eps)
    param.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)
    return denom


# Regularization, shared by every rule and applied by the optimizer base.


def decoupled_decay_(param: Tensor, *, lr: float, weight_decay: float) -> None:
    """Decoupled weight decay (Loshchilov & Hutter 2019, AdamW): theta <- theta * (1 - eta * wd)."""
    param.mul_(1.0 - lr * weight_decay)


def with_l2(grad: Tensor, param: Tensor, *, l2: float) -> Tensor:
    """Coupled L2: the gradient of l2/2 * ||theta||^2 added to g (torch's ``weight_decay``).

    g <- g + l2 * theta   (a new tensor: the user's .grad is never modified)
    """
    return grad.add(param, alpha=l2)


def soft_threshold_(param: Tensor, threshold: Divisor) -> None:
    """L1 proximal step: theta <- sign(theta) * max(|theta| - tau, 0), tau = l1 * eta / d.

    With the plain gradient step size this is ISTA, so full-batch SGD converges to the Lasso
    solution with exact zeros. For adaptive rules tau is per coordinate (the rule's own
    step size eta / d), which is the proximal step in the metric the rule preconditions with.
    """
    shrunk = param.abs().sub_(threshold).clamp_(min=0.0)
    param.copy_(shrunk.mul_(param.sign()))
