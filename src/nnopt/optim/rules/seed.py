"""The seed's rules: gradient descent, momentum, AdaGrad, RMSProp, Adam."""

from __future__ import annotations

import torch
from torch import Tensor

from nnopt.optim.rules.ops import Divisor, Scalar, add_, addcdiv_, addcmul_, plus_, sqrt_of


def sgd_(param: Tensor, grad: Tensor, *, lr: Scalar) -> Divisor:
    """Plain gradient descent: theta <- theta - eta * g."""
    add_(param, grad, -lr)
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
        add_(param, grad.add(buf, alpha=momentum), -lr)
    else:
        add_(param, buf, -lr)
    return 1.0


def adagrad_(param: Tensor, grad: Tensor, sum_sq: Tensor, *, lr: Scalar, eps: float) -> Divisor:
    """AdaGrad (Duchi et al. 2011).

    G <- G + g^2
    theta <- theta - eta * g / (sqrt(G) + eps)
    """
    sum_sq.addcmul_(grad, grad, value=1.0)
    std = plus_(sum_sq.sqrt(), eps)
    addcdiv_(param, grad, std, -lr)
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
    denom = spread.add_(eps).sqrt_() if eps_inside_sqrt else plus_(spread.sqrt_(), eps)
    if momentum_buffer is not None and momentum > 0:
        momentum_buffer.mul_(momentum).addcdiv_(grad, denom)
        add_(param, momentum_buffer, -lr)
    else:
        addcdiv_(param, grad, denom, -lr)
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
    addcmul_(exp_avg_sq.mul_(beta2), grad, grad, 1.0 - beta2)
    bias_correction1 = 1.0 - beta1**step
    bias_correction2_sqrt = sqrt_of(1.0 - beta2**step)
    if max_exp_avg_sq is not None:
        if torch.is_grad_enabled():  # a differentiable step: out= is not differentiable
            max_exp_avg_sq.copy_(torch.maximum(max_exp_avg_sq.clone(), exp_avg_sq))
        else:
            torch.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        second = max_exp_avg_sq
    else:
        second = exp_avg_sq
    denom = (second.sqrt() / bias_correction2_sqrt).add_(eps)
    addcdiv_(param, exp_avg, denom, -lr / bias_correction1)
    return denom
