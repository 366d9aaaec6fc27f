"""Muon's rule (Jordan et al. 2024; Liu et al. 2025): momentum, then its orthogonalization."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from nnopt.optim.rules.ops import Divisor

# The quintic's coefficients and the iteration count of Keller Jordan's Muon (torch's too).
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5
ADJUSTMENTS = ("original", "match_rms_adamw")


def newton_schulz(matrix: Tensor, coefficients: tuple[float, float, float], steps: int,
                  eps: float) -> Tensor:  # fmt: skip
    """Approximately U V^T for matrix = U S V^T, by ``steps`` iterations of a quintic in bfloat16:

    X <- M / max(||M||_F, eps)  (the wide way: M^T for a tall M, so X X^T is the smaller)
    X <- a X + (b A + c A^2) X,  A = X X^T

    (a, b, c) are chosen for the slope at 0, not for convergence: the singular values end
    near 1 (within about 0.7-1.2), which trains as well as U V^T (Jordan et al. 2024). In
    bfloat16 as Keller Jordan's and torch's Muon; the input is copied, never changed.
    """
    a, b, c = coefficients
    x = matrix.to(torch.bfloat16, copy=True)
    tall = matrix.size(0) > matrix.size(1)
    if tall:
        x = x.T
    x.div_(x.norm().clamp(min=eps))
    for _ in range(steps):
        gram = x @ x.T
        poly = torch.addmm(gram, gram, gram, beta=b, alpha=c)
        x = torch.addmm(x, poly, x, beta=a)
    return x.T if tall else x


def adjusted_lr_ratio(adjust_lr_fn: str | None, rows: int, cols: int) -> float:
    """How much the lr is scaled for an (A, B) = (rows, cols) matrix, so the update's RMS
    does not depend on its shape: "original" (Jordan) sqrt(max(1, A / B)); "match_rms_adamw"
    (Liu et al. 2025, Moonshot) 0.2 sqrt(max(A, B)), the RMS of an AdamW update, so that one
    lr and weight decay serve Muon's matrices and AdamW's other parameters."""
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return math.sqrt(max(1, rows / cols))


def muon_(
    param: Tensor,
    grad: Tensor,
    momentum_buffer: Tensor,
    *,
    lr: float,
    momentum: float,
    nesterov: bool,
    ns_coefficients: tuple[float, float, float],
    ns_steps: int,
    eps: float,
    adjust_lr_fn: str | None,
) -> Divisor:
    """Muon (Jordan et al. 2024, "Muon: An optimizer for hidden layers in neural networks"):

    B <- mu B + (1 - mu) g;  U = (1 - mu) g + mu B (Nesterov) or B
    O = NS(U as a matrix (rows, everything else))   (see :func:`newton_schulz`)
    theta <- theta - eta * r(A, B) * O             (r: :func:`adjusted_lr_ratio`)

    A parameter of more than two dimensions (a conv kernel) is orthogonalized as its
    (out, in * k...) matrix. The step of every coordinate is eta * r, so L1's threshold is
    l1 * eta * r (d = 1 / r). Decoupled decay theta (1 - eta wd) is the base's, before.
    """
    momentum_buffer.lerp_(grad, 1 - momentum)
    update = grad.lerp(momentum_buffer, momentum) if nesterov else momentum_buffer
    matrix = update.reshape(update.shape[0], -1)
    ortho = newton_schulz(matrix, ns_coefficients, ns_steps, eps)
    ratio = adjusted_lr_ratio(adjust_lr_fn, matrix.size(0), matrix.size(1))
    param.add_(ortho.reshape(param.shape), alpha=-lr * ratio)
    return 1.0 / ratio
