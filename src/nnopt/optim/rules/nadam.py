"""NAdam's rule (Dozat 2016), with torch's momentum schedule."""

from __future__ import annotations

import torch
from torch import Tensor

from nnopt.optim.rules.ops import Divisor, Scalar, addcdiv_, addcmul_, plus_


def momentum_at(beta1: float, momentum_decay: float, step: float) -> float:
    """mu_t = b1 (1 - 0.5 * 0.96^(t psi)): Dozat's schedule, torch's ``momentum_decay`` psi."""
    return beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))


def nadam_(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    mu_product: Tensor,
    *,
    step: int,
    lr: Scalar,
    beta1: float,
    beta2: float,
    eps: float,
    momentum_decay: float,
) -> Divisor:
    """NAdam, "Incorporating Nesterov Momentum into Adam" (Dozat 2016), as torch.optim.NAdam.

    mu_t = b1 (1 - 0.5 * 0.96^(t psi));  P_t = mu_1 ... mu_t  (``mu_product``, a scalar kept
    in the state as torch keeps it: float32, rounded at every step)
    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;  d = sqrt(v / (1 - b2^t)) + eps
    theta <- theta - eta (1 - mu_t) / (1 - P_t) g / d - eta mu_{t+1} / (1 - P_t mu_{t+1}) m / d
    """
    mu = momentum_at(beta1, momentum_decay, step)
    mu_next = momentum_at(beta1, momentum_decay, step + 1)
    mu_product.mul_(mu)  # torch's op on torch's scalar: the same rounding
    exp_avg.lerp_(grad, 1.0 - beta1)
    addcmul_(exp_avg_sq.mul_(beta2), grad, grad, 1.0 - beta2)
    denom = plus_(exp_avg_sq.div(1.0 - beta2**step).sqrt_(), eps)
    # A differentiable step keeps the product a Tensor (.item() would cut the graph).
    product = mu_product if torch.is_grad_enabled() else mu_product.item()
    addcdiv_(param, grad, denom, -lr * (1.0 - mu) / (1.0 - product))
    addcdiv_(param, exp_avg, denom, -lr * mu_next / (1.0 - product * mu_next))
    return denom
