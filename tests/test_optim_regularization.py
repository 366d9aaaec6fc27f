"""Regularization reaches the known optima: Lasso (sklearn) for L1, the closed form for ridge.

Full-batch SGD with lr = 1/L on f(w) = 1/(2n) ||Xw - y||^2 (L the largest eigenvalue of
X^T X / n) is ISTA when l1 > 0, converging to the Lasso solution with its exact zeros, and
gradient descent on f + l2/2 ||w||^2 when l2 > 0. X^T X / n is well conditioned here (n = 200,
d = 20), so a few hundred float64 steps reach machine precision.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from optim_helpers import FLAT_MODES, KERNEL_MODES
from sklearn.linear_model import Lasso

import nnopt

N, D = 200, 20


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, D))
    w_star = np.zeros(D)
    w_star[[1, 4, 7, 12, 18]] = [2.0, -3.0, 1.5, -1.0, 0.5]
    y = X @ w_star + 0.5 * rng.standard_normal(N)
    L = np.linalg.eigvalsh(X.T @ X / N).max()
    return X, y, L


def full_batch_sgd(X, y, lr, steps, *, flat, kernels="auto", **options) -> np.ndarray:
    """Minimize 1/(2n) ||Xw - y||^2 from w = 0 with nnopt.SGD on the full batch (float64)."""
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    w = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    opt = nnopt.SGD([w], lr=lr, flat=flat, **options)
    opt.kernels = kernels
    for _ in range(steps):
        opt.zero_grad()
        loss = ((Xt @ w - yt) ** 2).sum() / (2 * len(yt))
        loss.backward()
        opt.step()
    return w.detach().numpy()


@pytest.mark.parametrize("kernels", KERNEL_MODES)
@pytest.mark.parametrize("flat", FLAT_MODES, ids=["flat", "per-tensor"])
@pytest.mark.parametrize("alpha", [0.05, 0.3])
def test_l1_full_batch_sgd_is_lasso(problem, alpha, flat, kernels):
    X, y, L = problem
    expected = Lasso(alpha=alpha, fit_intercept=False, tol=1e-14, max_iter=100_000).fit(X, y).coef_
    w = full_batch_sgd(X, y, 1.0 / L, 300, flat=flat, kernels=kernels, l1=alpha)
    np.testing.assert_allclose(w, expected, rtol=0, atol=1e-6)
    # The same exact zeros: a sparse solution, not merely small coefficients.
    zeros = expected == 0
    assert 0 < zeros.sum() < D
    np.testing.assert_array_equal(w == 0, zeros)


@pytest.mark.parametrize("kernels", KERNEL_MODES)
@pytest.mark.parametrize("flat", FLAT_MODES, ids=["flat", "per-tensor"])
@pytest.mark.parametrize("alpha", [0.1, 1.0])
def test_l2_full_batch_sgd_is_ridge(problem, alpha, flat, kernels):
    X, y, L = problem
    expected = np.linalg.solve(X.T @ X / N + alpha * np.eye(D), X.T @ y / N)
    w = full_batch_sgd(X, y, 1.0 / (L + alpha), 300, flat=flat, kernels=kernels, l2=alpha)
    np.testing.assert_allclose(w, expected, rtol=0, atol=1e-10)
    assert not (w == 0).any()  # L2 shrinks, it never zeroes
