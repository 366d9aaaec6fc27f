"""Lion's rule (Chen et al. 2023)."""

from __future__ import annotations

from torch import Tensor

from nnopt.optim.rules.ops import Divisor, Scalar, add_


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
    interpolated = add_(exp_avg.mul(beta1), grad, 1.0 - beta1)
    add_(param, interpolated.sign_(), -lr)
    add_(exp_avg.mul_(beta2), grad, 1.0 - beta2)
    return 1.0
