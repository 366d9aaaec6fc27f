"""Convergence, the optax way: a table of optimizers, each with a fitting learning rate, must
bring an ill-conditioned quadratic and the Rosenbrock function close to their optimum.

Quadratic: f(x, y) = (x^2 + 50 y^2) / 2 (condition number 50) from (1.5, -1), optimum (0, 0).
Rosenbrock: f(x, y) = (1 - x)^2 + 100 (y - x^2)^2 from (-1.5, 2), optimum (1, 1): the start is
2.7 away, across a curved valley.

Tolerances are per optimizer and say what each one does at a constant learning rate: momentum
and Adam-type methods converge to high precision; RMSProp at a constant rate hovers within
O(lr) of the optimum; plain gradient descent crawls along the Rosenbrock valley and AdaGrad's
ever-growing accumulator stalls it there (so for those the test checks progress, not precision).
Each (steps, tol) has a margin of several times over the observed result.
"""

from __future__ import annotations

import pytest
import torch

import nnopt

CURVATURE = torch.tensor([1.0, 50.0], dtype=torch.float64)


def quadratic_grad(p: torch.Tensor) -> torch.Tensor:
    return CURVATURE * p


def rosenbrock_grad(p: torch.Tensor) -> torch.Tensor:
    x, y = p[0], p[1]
    r = y - x * x
    return torch.stack([-2 * (1 - x) - 400 * x * r, 200 * r])


def minimize(cls, kwargs, grad, start, steps) -> torch.Tensor:
    """Run ``steps`` steps from ``start`` with exact gradients (float64); return the point."""
    p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = cls([p], **kwargs)
    for _ in range(steps):
        p.grad = grad(p.detach())
        opt.step()
    return p.detach()


def entry(name, cls, kwargs, steps, tol):
    return pytest.param(cls, kwargs, steps, tol, id=name)


QUADRATIC = [
    entry("sgd", nnopt.SGD, dict(lr=0.035), 500, 1e-6),
    entry("momentum", nnopt.SGD, dict(lr=0.01, momentum=0.7), 500, 1e-6),
    entry("nesterov", nnopt.SGD, dict(lr=0.01, momentum=0.7, nesterov=True), 500, 1e-6),
    entry("adagrad", nnopt.AdaGrad, dict(lr=0.5), 200, 1e-6),
    entry("rmsprop-seed", nnopt.RMSProp, dict(lr=0.01), 500, 2e-2),
    entry(
        "rmsprop-torch-centered-momentum",
        nnopt.RMSProp,
        dict(lr=0.01, eps_inside_sqrt=False, centered=True, momentum=0.9),
        500,
        2e-2,
    ),
    entry("adam", nnopt.Adam, dict(lr=0.05), 500, 1e-6),
    entry("amsgrad", nnopt.Adam, dict(lr=0.05, amsgrad=True), 500, 1e-6),
    entry("adamw", nnopt.AdamW, dict(lr=0.05, weight_decay=0.01), 500, 1e-6),
]

ROSENBROCK = [
    entry("sgd", nnopt.SGD, dict(lr=0.002), 2000, 0.05),
    entry("momentum", nnopt.SGD, dict(lr=0.002, momentum=0.9), 1000, 1e-3),
    entry("nesterov", nnopt.SGD, dict(lr=0.001, momentum=0.9, nesterov=True), 2000, 1e-3),
    entry("adagrad", nnopt.AdaGrad, dict(lr=2.0), 2000, 0.5),
    entry("rmsprop-seed-momentum", nnopt.RMSProp, dict(lr=0.001, momentum=0.9), 1500, 3e-3),
    entry(
        "rmsprop-torch-centered-momentum",
        nnopt.RMSProp,
        dict(lr=0.001, eps_inside_sqrt=False, centered=True, momentum=0.9),
        1500,
        3e-3,
    ),
    entry("adam", nnopt.Adam, dict(lr=0.05), 2000, 1e-3),
    entry("amsgrad", nnopt.Adam, dict(lr=0.1, amsgrad=True), 2000, 1e-3),
    entry("adamw", nnopt.AdamW, dict(lr=0.05, weight_decay=1e-4), 2000, 1e-2),
]


@pytest.mark.parametrize(("cls", "kwargs", "steps", "tol"), QUADRATIC)
def test_ill_conditioned_quadratic(cls, kwargs, steps, tol):
    p = minimize(cls, kwargs, quadratic_grad, [1.5, -1.0], steps)
    assert p.norm().item() < tol


@pytest.mark.parametrize(("cls", "kwargs", "steps", "tol"), ROSENBROCK)
def test_rosenbrock(cls, kwargs, steps, tol):
    p = minimize(cls, kwargs, rosenbrock_grad, [-1.5, 2.0], steps)
    distance = (p - torch.ones(2, dtype=torch.float64)).norm().item()
    assert distance < tol
