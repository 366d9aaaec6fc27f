"""Schedule-Free SGD and AdamW's rules (Defazio et al. 2024, "The Road Less Scheduled").

Three sequences: z, the base method's iterate; x, the weighted average of the z's, where the
model is evaluated; y = (1 - beta) z + beta x, where the gradient is taken and which the
parameter holds while training. Only y and z are stored: x is recovered from them when the
optimizer's ``eval()`` moves the parameter there (``optim/schedule_free.py``). One step at
the averaging weight c_{t+1} = w_t / sum_{i<=t} w_i (the optimizer's bookkeeping):

    u = g / d                                  (d = 1 for SGD; Adam's sqrt(v_hat) + eps)
    u <- u + lambda y                          (the paper's weight decay, taken at y)
    z_{t+1} = z_t - eta u
    x_{t+1} = (1 - c) x_t + c z_{t+1}
    y_{t+1} = (1 - beta) z_{t+1} + beta x_{t+1}

Written in y and z alone (no x), as the reference implementation does:

    y <- lerp(y, z, c) + eta (beta (1 - c) - 1) u;   z <- z - eta u

``y_decay`` is the optimizer's ``weight_decay`` (named apart from the decoupled decay every
kernel block has). The ops and their order are the ``schedulefree`` package's (1.4.1), so
the eager rule equals it bit for bit; ``u`` is a new tensor (the package overwrites the
user's gradient with it).
"""

from __future__ import annotations

from torch import Tensor

from nnopt.optim.rules.ops import Divisor


def schedule_free_sgd_(
    param: Tensor,
    grad: Tensor,
    z: Tensor,
    *,
    lr: float,
    momentum: float,
    y_decay: float,
    ckp1: float,
) -> Divisor:
    """Schedule-Free SGD (Defazio et al. 2024, Algorithm 1 with SGD as the base method).

    u = g + lambda y;  y <- lerp(y, z, c) + eta (beta (1 - c) - 1) u;  z <- z - eta u;  d = 1,
    with beta the ``momentum`` and c = ``ckp1`` this step's averaging weight.
    """
    u = grad.add(param, alpha=y_decay) if y_decay != 0 else grad
    _interpolate_(param, z, u, lr=lr, beta=momentum, ckp1=ckp1)
    return 1.0


def schedule_free_adamw_(
    param: Tensor,
    grad: Tensor,
    z: Tensor,
    exp_avg_sq: Tensor,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    y_decay: float,
    ckp1: float,
    bias_correction2: float,
) -> Divisor:
    """Schedule-Free AdamW (Defazio et al. 2024, Algorithm 1 with Adam's preconditioner).

    v <- beta2 v + (1 - beta2) g^2;  d = sqrt(v / (1 - beta2^t)) + eps;  u = g / d + lambda y
    y <- lerp(y, z, c) + eta (beta1 (1 - c) - 1) u;  z <- z - eta u.
    Adam's first moment is replaced by the y/x interpolation (beta1 plays its part); the
    decay is decoupled from the preconditioner (AdamW's) and goes through z, as the paper's.
    """
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    denom = exp_avg_sq.div(bias_correction2).sqrt_().add_(eps)
    u = grad.div(denom)
    if y_decay != 0:
        u.add_(param, alpha=y_decay)
    _interpolate_(param, z, u, lr=lr, beta=beta1, ckp1=ckp1)
    return denom


def _interpolate_(y: Tensor, z: Tensor, u: Tensor, *, lr: float, beta: float, ckp1: float) -> None:
    y.lerp_(z, ckp1)
    y.add_(u, alpha=lr * (beta * (1 - ckp1) - 1))
    z.sub_(u, alpha=lr)
