"""RAdam's rule (Liu et al. 2020)."""

from __future__ import annotations

import math

from torch import Tensor

from nnopt.optim.rules.ops import Divisor, Scalar, add_, addcdiv_, addcmul_, plus_


def rectification(beta2: float, step: int) -> float | None:
    """RAdam's variance rectification r_t at step t, or None while rho_t <= 5 (the variance
    of the adaptive lr is not yet tractable: the step is momentum SGD).

    rho_inf = 2 / (1 - b2) - 1;  rho_t = rho_inf - 2 t b2^t / (1 - b2^t)
    r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
    (torch.optim.RAdam's threshold 5; the paper's Algorithm 2 says 4.)
    """
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * step * (beta2**step) / (1 - beta2**step)
    if not rho_t > 5.0:
        return None
    return math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))


def radam_(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    *,
    step: int,
    lr: Scalar,
    beta1: float,
    beta2: float,
    eps: float,
) -> Divisor:
    """RAdam, "On the Variance of the Adaptive Learning Rate and Beyond" (Liu et al. 2020,
    Algorithm 2), as torch.optim.RAdam.

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;  m_hat = m / (1 - b1^t)
    rectified (rho_t > 5):  theta <- theta - eta r_t m_hat sqrt(1 - b2^t) / (sqrt(v) + eps)
    otherwise:              theta <- theta - eta m_hat
    with r_t and rho_t as :func:`rectification`. The preconditioner is
    d = (sqrt(v) + eps) / (sqrt(1 - b2^t) r_t) when rectified, else 1.
    """
    exp_avg.lerp_(grad, 1.0 - beta1)
    addcmul_(exp_avg_sq.mul_(beta2), grad, grad, 1.0 - beta2)
    bias_correction1 = 1.0 - beta1**step
    rect = rectification(beta2, step)
    if rect is None:
        add_(param, exp_avg, -lr / bias_correction1)
        return 1.0
    denom = plus_(exp_avg_sq.sqrt(), eps).div_(math.sqrt(1.0 - beta2**step) * rect)
    addcdiv_(param, exp_avg, denom, -lr / bias_correction1)
    return denom
