"""Adafactor's rule (Shazeer & Stern 2018), as torch.optim.Adafactor computes it."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from nnopt.optim.rules.ops import Divisor


def adafactor_(
    param: Tensor,
    grad: Tensor,
    *,
    row_var: Tensor | None = None,
    col_var: Tensor | None = None,
    variance: Tensor | None = None,
    step: int,
    lr: float,
    beta2_decay: float,
    eps1: float,
    eps2: float,
    d: float,
    weight_decay: float,
    divisor: bool = False,
) -> Divisor:
    """Adafactor (Shazeer & Stern 2018, Algorithms 4 and 5) in torch's form:

    1 - beta2_t = t^beta2_decay;  rho_t = min(eta, 1 / sqrt(t));
    alpha_t = max(eps2, RMS(theta)) rho_t   (theta before the decay)
    theta <- theta (1 - eta wd)              (decoupled decay, after alpha_t is read)
    matrices (the last two dimensions; the others batch them):
        R <- lerp(R, mean_cols(g^2), 1 - beta2_t);  C <- lerp(C, mean_rows(g^2), 1 - beta2_t)
        V = R C / max(mean(R), eps1)
    others: V <- lerp(V, g^2, 1 - beta2_t)
    U = g / sqrt(max(V, eps1^2));  theta <- theta - alpha_t U / max(1, RMS(U) / d)

    The second moment of an (n, m) matrix costs n + m numbers instead of n m. The per
    coordinate step is alpha_t / (max(1, RMS(U) / d) sqrt(V)): with ``divisor`` the rule
    returns d = eta / that (L1's threshold), else 1.0.
    """
    if param.numel() == 0:
        return 1.0  # (torch divides by the size: nothing to do)
    one_minus_beta2 = step**beta2_decay
    rho = min(lr, 1 / (step**0.5))
    alpha = max(eps2, param.norm(2).item() / (param.numel() ** 0.5)) * rho
    if weight_decay != 0:
        param.mul_(1 - lr * weight_decay)
    if grad.dim() > 1:
        assert row_var is not None and col_var is not None
        # mean of g^2 over a row, without a g-sized temporary
        row_mean = torch.norm(grad, dim=-1, keepdim=True).square_().div_(grad.size(-1))
        row_var.lerp_(row_mean, one_minus_beta2)
        col_mean = torch.norm(grad, dim=-2, keepdim=True).square_().div_(grad.size(-2))
        col_var.lerp_(col_mean, one_minus_beta2)
        estimate = row_var @ col_var
        estimate.div_(row_var.mean(dim=-2, keepdim=True).clamp_(min=eps1))
    else:
        assert variance is not None
        variance.lerp_(grad * grad, one_minus_beta2)
        estimate = variance.clone()  # (the update is built in place: keep V)
    scale = estimate.clamp_(min=eps1 * eps1).rsqrt_()
    update = scale.mul(grad) if divisor else scale.mul_(grad)
    denom = max(1.0, update.norm(2).item() / ((update.numel() ** 0.5) * d))
    param.add_(update, alpha=-alpha / denom)
    if not divisor:
        return 1.0
    if alpha == 0:
        return math.inf  # nothing moved
    return scale.reciprocal_().mul_(lr * denom / alpha)
