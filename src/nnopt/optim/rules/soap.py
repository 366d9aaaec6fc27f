"""SOAP's rule (Vyas et al. 2024): Adam in the eigenbasis of Shampoo's preconditioner."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from nnopt.optim.rules.ops import Divisor

# Per dimension of the (merged) tensor: its Kronecker factor and eigenbasis, or None where the
# dimension is left unrotated.
Matrices = list[Tensor | None]


def merged_shape(shape: tuple[int, ...], max_precond_dim: int) -> tuple[int, ...]:
    """SOAP's ``merge_dims``: neighbouring dimensions multiplied together, left to right, while
    the product stays <= max_precond_dim (a conv kernel (64, 32, 3, 3) -> (64, 288)); a
    dimension that alone exceeds it stays as it is. A scalar becomes (1,)."""
    merged: list[int] = []
    run = 1
    for size in shape:
        if run * size <= max_precond_dim:
            run *= size
        elif run > 1:
            merged.append(run)
            run = size
        else:
            merged.append(size)
    if run > 1 or not merged:
        merged.append(run)
    return tuple(merged)


def rotated_dims(
    ndim: int, shape: tuple[int, ...], max_precond_dim: int, precondition_1d: bool
) -> list[bool]:
    """Which dimensions of the (merged) gradient ``shape`` SOAP rotates: those <=
    max_precond_dim, and a 1-D parameter's (``ndim`` 1) only with ``precondition_1d`` (by
    default it takes Adam's step, unrotated)."""
    if ndim == 1 and not precondition_1d:
        return [False]
    return [size <= max_precond_dim for size in shape]


def gram(x: Tensor, dim: int) -> Tensor:
    """X_(k) X_(k)^T for the mode-k unfolding X_(k) of x (G G^T and G^T G of a matrix)."""
    unfolded = x.movedim(dim, 0).reshape(x.shape[dim], -1)
    return unfolded @ unfolded.T


def rotate(x: Tensor, bases: Matrices, back: bool = False) -> Tensor:
    """Q_1^T x Q_2 ... along every rotated dimension (``back``: Q_1 x Q_2^T ...)."""
    for dim, q in enumerate(bases):
        if q is not None:
            x = torch.tensordot(x, q, dims=([dim], [1 if back else 0])).movedim(-1, dim)
    return x


def eigenbasis(factor: Tensor) -> Tensor:
    """The eigenvectors of a symmetric factor, by decreasing eigenvalue (the first basis)."""
    return torch.linalg.eigh(factor).eigenvectors.flip(1)


def refresh_(factors: Matrices, bases: Matrices, exp_avg_sq: Tensor) -> None:
    """One power iteration and a QR per factor (the paper's Algorithm 4), the columns first
    sorted by the eigenvalue estimate diag(Q^T P Q), decreasing, and v's entries with them
    (as the authors' code does), so each column of v stays with its direction."""
    for dim, (p, q) in enumerate(zip(factors, bases, strict=True)):
        if p is None or q is None:
            continue
        estimate = (q * (p @ q)).sum(0)
        order = torch.argsort(estimate, descending=True)
        exp_avg_sq.copy_(exp_avg_sq.index_select(dim, order))
        q.copy_(torch.linalg.qr(p @ q[:, order]).Q)


def soap_(
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    factors: Matrices,
    bases: Matrices,
    *,
    step: int,
    beta1: float,
    beta2: float,
    shampoo_beta: float,
    eps: float,
    precondition_frequency: int,
    normalize_grads: bool,
    correct_bias: bool,
    divisor: bool,
) -> tuple[Tensor | None, Divisor]:
    """SOAP (Vyas et al. 2024, "SOAP: Improving and Stabilizing Shampoo using Adam",
    Algorithm 3), on one gradient G already shaped as its (merged) tensor; returns the
    update N (the caller does theta <- theta - eta N) and the preconditioner d.

    Step 1 (the authors' code): L_k <- (1 - beta_s) G_(k) G_(k)^T, Q_k its eigenvectors;
    no update (N is None), so the projection never holds the gradient it rotates.
    Step c > 1, t = c - 1 (Adam's count), with G' = G x_k Q_k^T (rotated dimensions only):
        m' <- b1 m' + (1 - b1) G'         (m kept rotated: m' = M x_k Q_k^T)
        v  <- b2 v + (1 - b2) G'^2
        N  = (m' / (sqrt(v) + eps)) x_k Q_k  * sqrt(1 - b2^t) / (1 - b1^t)  (correct_bias)
        N  <- N / RMS(N)                  (normalize_grads)
        L_k <- beta_s L_k + (1 - beta_s) G_(k) G_(k)^T
        every precondition_frequency t: Q_k <- QR(L_k Q_k) (refresh_), m' re-rotated.
    d (for L1, when ``divisor``): 1 / the diagonal of the preconditioner in theta's
    coordinates, diag = (1 / (sqrt(v) + eps)) x_k (Q_k o Q_k) times the step's scale; Adam's
    d where no dimension is rotated.
    """
    if grad.numel() == 0:
        return None, 1.0  # nothing to rotate or update
    for dim, p in enumerate(factors):
        if p is not None:
            p.lerp_(gram(grad, dim), 1.0 - shampoo_beta)
    if step == 1:
        for p, q in zip(factors, bases, strict=True):
            if p is not None and q is not None:
                q.copy_(eigenbasis(p))
        return None, math.inf
    t = step - 1
    # The factors already hold this gradient; the bases (and so the step) do not yet.
    rotated = rotate(grad, bases)
    exp_avg.lerp_(rotated, 1.0 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(rotated, rotated, value=1.0 - beta2)
    denom = exp_avg_sq.sqrt().add_(eps)
    scale = math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t) if correct_bias else 1.0
    update = rotate(exp_avg / denom, bases, back=True).mul_(scale)
    if normalize_grads:
        rms = update.square().mean().sqrt().add_(1e-30)
        update.div_(rms)
    d: Divisor = 1.0
    if divisor:
        squares = [None if q is None else q * q for q in bases]
        d = rotate(denom.reciprocal(), squares, back=True).mul_(scale).reciprocal_()
        if normalize_grads:
            d = d.mul_(rms)
    if t % precondition_frequency == 0:
        plain = rotate(exp_avg, bases, back=True)
        refresh_(factors, bases, exp_avg_sq)
        exp_avg.copy_(rotate(plain, bases))
    return update, d
