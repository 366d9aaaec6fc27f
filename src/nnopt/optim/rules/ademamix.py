"""AdEMAMix's rule (Pagliardini, Ablin & Grangier 2024)."""

from __future__ import annotations

import math

from torch import Tensor

from nnopt.optim.rules.ops import Divisor, Scalar, add_, addcdiv_, addcmul_, sqrt_of


def ademamix_schedule(
    step: int, alpha: float, beta1: float, beta3: float, t_alpha_beta3: float | None
) -> tuple[float, float]:
    """The paper's warmup of alpha and beta3 at step t (from 1) over T = ``t_alpha_beta3``:

    alpha_t = min(t alpha / T, alpha)
    beta3_t = min(exp(ln b1 ln b3 / ((1 - t/T) ln b3 + (t/T) ln b1)), b3)

    (beta3_t moves from b1 to b3 linearly in the half-life 1 / ln(beta)). Without T: (alpha,
    beta3). The native kernel computes the same expressions in the same order.
    """
    if not t_alpha_beta3:
        return alpha, beta3
    T = float(t_alpha_beta3)
    log1, log3 = math.log(beta1), math.log(beta3)
    mix = step / T
    alpha_t = min(step * alpha / T, alpha)
    beta3_t = min(math.exp(log1 * log3 / ((1.0 - mix) * log3 + mix * log1)), beta3)
    return alpha_t, beta3_t


def ademamix_(
    param: Tensor,
    grad: Tensor,
    exp_avg_fast: Tensor,
    exp_avg_slow: Tensor,
    exp_avg_sq: Tensor,
    *,
    step: int,
    lr: Scalar,
    beta1: Scalar,
    beta2: Scalar,
    beta3: float,
    alpha: float,
    t_alpha_beta3: float | None,
    eps: float,
) -> Divisor:
    """AdEMAMix (Pagliardini et al. 2024, "The AdEMAMix Optimizer: Better, Faster, Older",
    Algorithm 1): Adam's numerator plus a slow, not bias-corrected EMA of the gradient.

    alpha_t, beta3_t = ademamix_schedule(t, ...)     (alpha, beta3 without t_alpha_beta3)
    m1 <- b1 m1 + (1 - b1) g                          (fast EMA)
    m2 <- beta3_t m2 + (1 - beta3_t) g                (slow EMA)
    nu <- b2 nu + (1 - b2) g^2
    d = sqrt(nu) / sqrt(1 - b2^t) + eps
    theta <- theta - eta (m1 / (1 - b1^t) + alpha_t m2) / d
    The paper's weight decay (- eta lambda theta) is the base's decoupled decay, before.
    """
    alpha_t, beta3_t = ademamix_schedule(step, alpha, beta1, beta3, t_alpha_beta3)
    exp_avg_fast.lerp_(grad, 1.0 - beta1)
    exp_avg_slow.lerp_(grad, 1.0 - beta3_t)
    addcmul_(exp_avg_sq.mul_(beta2), grad, grad, 1.0 - beta2)
    denom = (exp_avg_sq.sqrt() / sqrt_of(1.0 - beta2**step)).add_(eps)
    numerator = add_(exp_avg_fast.div(1.0 - beta1**step), exp_avg_slow, alpha_t)
    addcdiv_(param, numerator, denom, -lr)
    return denom
