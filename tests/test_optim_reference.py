"""nnopt vs a float64 NumPy transcription of the seed's formulas (SEED.md), and L1/decay values.

The reference below is written from SEED.md and the documented order of one update
(nnopt/optim/base.py), not from nnopt's code:

    g <- g + l2 * theta;   theta <- theta * (1 - eta * wd);   theta, d <- rule(theta, g);
    theta <- sign(theta) * max(|theta| - l1 * eta / d, 0)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from optim_helpers import FLAT_MODES, KERNEL_MODES, SHAPES, clone_params, grad_stream, make_params

import nnopt


class Reference:
    """One optimizer's state for one parameter, in float64 NumPy."""

    def __init__(self, kind: str, shape, **hp) -> None:
        self.kind, self.hp, self.t = kind, hp, 0
        zeros = np.zeros(shape)
        self.m, self.v, self.vmax, self.gbar, self.buf = (zeros.copy() for _ in range(5))
        self.G = np.full(shape, hp.get("initial_accumulator_value", 0.0))

    def step(self, theta: np.ndarray, g: np.ndarray) -> np.ndarray:
        hp, eta = self.hp, self.hp["lr"]
        self.t += 1
        g = g + hp.get("l2", 0.0) * theta
        theta = theta * (1.0 - eta * hp.get("weight_decay", 0.0))
        d = 1.0
        if self.kind == "sgd":
            mu = hp.get("momentum", 0.0)
            if mu:
                self.buf = mu * self.buf + g
                direction = g + mu * self.buf if hp.get("nesterov") else self.buf
            else:
                direction = g
            theta = theta - eta * direction
        elif self.kind == "adagrad":
            self.G = self.G + g**2
            d = np.sqrt(self.G) + hp["eps"]
            theta = theta - eta * g / d
        elif self.kind == "rmsprop":
            rho, eps, mu = hp["rho"], hp["eps"], hp.get("momentum", 0.0)
            # E[g^2]_t = rho E[g^2]_{t-1} + (1 - rho) g_t^2
            self.v = rho * self.v + (1 - rho) * g**2
            spread = self.v
            if hp.get("centered"):
                self.gbar = rho * self.gbar + (1 - rho) * g
                spread = self.v - self.gbar**2
            # theta <- theta - eta / sqrt(E[g^2]_t + eps) * g   (the seed's form)
            d = np.sqrt(spread + eps) if hp.get("eps_inside_sqrt", True) else np.sqrt(spread) + eps
            if mu:
                self.buf = mu * self.buf + g / d
                theta = theta - eta * self.buf
            else:
                theta = theta - eta * g / d
        elif self.kind == "adam":
            b1, b2 = hp.get("betas", (0.9, 0.999))
            self.m = b1 * self.m + (1 - b1) * g
            self.v = b2 * self.v + (1 - b2) * g**2
            second = self.v
            if hp.get("amsgrad"):
                self.vmax = np.maximum(self.vmax, self.v)
                second = self.vmax
            m_hat = self.m / (1 - b1**self.t)
            v_hat = second / (1 - b2**self.t)
            d = np.sqrt(v_hat) + hp["eps"]
            theta = theta - eta * m_hat / d
        else:
            raise AssertionError(self.kind)
        tau = hp.get("l1", 0.0) * eta / d
        return np.sign(theta) * np.maximum(np.abs(theta) - tau, 0.0)


NNOPT = {"sgd": nnopt.SGD, "adagrad": nnopt.AdaGrad, "rmsprop": nnopt.RMSProp, "adam": nnopt.Adam}

REF_CASES = [
    # The seed's two algorithms, exactly as written there.
    pytest.param("rmsprop", dict(lr=0.01, rho=0.9, eps=1e-8), id="rmsprop-seed"),
    pytest.param("adam", dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8), id="adam-seed"),
    # Momentum and AdaGrad, and the variants torch has no equal for.
    pytest.param("sgd", dict(lr=0.05), id="sgd"),
    pytest.param("sgd", dict(lr=0.05, momentum=0.9), id="heavy-ball"),
    pytest.param("sgd", dict(lr=0.05, momentum=0.9, nesterov=True), id="nesterov"),
    pytest.param("adagrad", dict(lr=0.1, eps=1e-10), id="adagrad"),
    pytest.param(
        "adagrad", dict(lr=0.1, eps=1e-10, initial_accumulator_value=0.3), id="adagrad-acc"
    ),
    pytest.param("adam", dict(lr=0.01, eps=1e-8, amsgrad=True), id="amsgrad"),
    pytest.param(
        "rmsprop",
        dict(lr=0.01, rho=0.8, eps=1e-8, centered=True, momentum=0.5),
        id="rmsprop-seed-cm",
    ),
    # Every regularizer at once (L1 with its per-coordinate threshold, L2, decoupled decay).
    pytest.param(
        "sgd",
        dict(lr=0.05, momentum=0.9, l1=0.01, l2=0.1, weight_decay=0.2, decoupled_weight_decay=True),
        id="sgd-reg",
    ),
    pytest.param(
        "adagrad",
        dict(lr=0.1, eps=1e-10, l1=0.01, l2=0.1, weight_decay=0.2, decoupled_weight_decay=True),
        id="adagrad-reg",
    ),
    pytest.param(
        "rmsprop",
        dict(
            lr=0.01,
            rho=0.9,
            eps=1e-8,
            l1=0.01,
            l2=0.1,
            weight_decay=0.2,
            decoupled_weight_decay=True,
        ),
        id="rmsprop-reg",
    ),
    pytest.param(
        "adam",
        dict(
            lr=0.01,
            eps=1e-8,
            amsgrad=True,
            l1=0.01,
            l2=0.1,
            weight_decay=0.2,
            decoupled_weight_decay=True,
        ),
        id="adam-reg",
    ),
]


def run_against_reference(kind, hp, *, steps=100, groups=None):
    """Run nnopt (float64; every storage x kernel mode) and the NumPy reference side by side.

    ``groups``: per-group overrides for params [0, 2, 4] and [1, 3]. Returns the worst
    relative difference (max |a - b| / max(max |b|, 1) per tensor) seen.
    """
    start = make_params(SHAPES, dtype=torch.float64)
    thetas = [p.detach().numpy().copy() for p in start]
    if groups is None:
        refs = [Reference(kind, p.shape, **hp) for p in start]
    else:
        refs = [Reference(kind, p.shape, **{**hp, **groups[i % 2]}) for i, p in enumerate(start)]
    runs = {}
    for flat in FLAT_MODES:
        for kernels in KERNEL_MODES:
            params = clone_params(start)
            if groups is not None:
                params_arg = [
                    dict(params=params[0::2], **groups[0]),
                    dict(params=params[1::2], **groups[1]),
                ]
            else:
                params_arg = params
            opt = NNOPT[kind](params_arg, flat=flat, **hp)
            opt.kernels = kernels
            runs[f"flat={flat}-{kernels}"] = (opt, params)
    worst = 0.0
    for t, grads in enumerate(grad_stream(SHAPES, steps, dtype=torch.float64)):
        thetas = [ref.step(th, g.numpy()) for ref, th, g in zip(refs, thetas, grads, strict=True)]
        expected = torch.from_numpy(np.concatenate([th.reshape(-1) for th in thetas]))
        scales = torch.tensor([max(np.max(np.abs(th), initial=0.0), 1.0) for th in thetas])
        scales = scales.repeat_interleave(torch.tensor([th.size for th in thetas]))
        for name, (opt, params) in runs.items():
            for p, g in zip(params, grads, strict=True):
                p.grad = g.clone()
            opt.step()
            got = torch.cat([p.detach().reshape(-1) for p in params])
            diff = ((got - expected).abs() / scales).max().item()
            assert diff < 1e-10, f"step {t + 1}, {name}: relative difference {diff:.3g}"
            worst = max(worst, diff)
    return worst


@pytest.mark.parametrize(("kind", "hp"), REF_CASES)
def test_matches_float64_reference(kind, hp):
    run_against_reference(kind, hp)


def test_adagrad_initial_accumulator_per_group():
    """Each group's own initial_accumulator_value is used (torch.optim.Adagrad ignores it)."""
    groups = [dict(initial_accumulator_value=2.0), dict(initial_accumulator_value=0.0, lr=0.3)]
    run_against_reference("adagrad", dict(lr=0.1, eps=1e-10), groups=groups)


# --- L1: the soft threshold, on toy cases --------------------------------------------------


@pytest.mark.parametrize("flat", FLAT_MODES, ids=["flat", "per-tensor"])
def test_l1_soft_threshold_sgd(flat):
    """With a zero gradient, SGD(l1) is a pure soft threshold at tau = l1 * lr, exact zeros."""
    theta = torch.tensor([0.5, -0.05, 0.02, -2.0, 0.0, 0.1], dtype=torch.float64)
    p = theta.clone().requires_grad_(True)
    opt = nnopt.SGD([p], lr=0.1, l1=1.0, flat=flat)
    p.grad = torch.zeros_like(p)
    opt.step()
    expected = torch.tensor([0.4, 0.0, 0.0, -1.9, 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-15)
    assert (p.detach()[1:3] == 0).all() and (p.detach()[4:] == 0).all()
    opt.step()  # a second step: survivors shrink again, zeros stay zero
    torch.testing.assert_close(p.detach(), expected - 0.1 * expected.sign(), rtol=0, atol=1e-15)


@pytest.mark.parametrize("flat", FLAT_MODES, ids=["flat", "per-tensor"])
def test_l1_threshold_is_per_coordinate_for_adam(flat):
    """Adam(l1): tau = l1 * lr / d with d = sqrt(v_hat) + eps; after step 1, d = |g| + eps."""
    theta = torch.tensor([1.0, 0.05, -0.3, 0.02], dtype=torch.float64)
    g = torch.tensor([0.5, -2.0, 0.1, 1e-3], dtype=torch.float64)
    lr, l1, eps = 0.1, 0.2, 1e-8
    p = theta.clone().requires_grad_(True)
    opt = nnopt.Adam([p], lr=lr, eps=eps, l1=l1, flat=flat)
    p.grad = g.clone()
    opt.step()
    d = g.abs() + eps
    moved = theta - lr * g / d  # m_hat = g, v_hat = g^2 at t = 1
    expected = moved.sign() * (moved.abs() - l1 * lr / d).clamp(min=0)
    torch.testing.assert_close(p.detach(), expected, rtol=1e-12, atol=1e-15)
    # 0.05 + 0.1 = 0.15 shrinks by l1*lr/2 = 0.01; 0.02 - 0.1 = -0.08 is zeroed by 0.02/1e-3.
    assert p.detach()[3] == 0 and p.detach()[1] == pytest.approx(0.14, abs=1e-7)


# --- decoupled weight decay --------------------------------------------------------------


@pytest.mark.parametrize("flat", FLAT_MODES, ids=["flat", "per-tensor"])
@pytest.mark.parametrize("kernels", KERNEL_MODES)
@pytest.mark.parametrize("cls", [nnopt.AdamW, nnopt.Adam, nnopt.SGD, nnopt.RMSProp, nnopt.AdaGrad])
def test_decoupled_decay_value(cls, flat, kernels):
    """With a zero gradient the rule moves nothing and theta <- theta * (1 - lr * wd) exactly."""
    theta = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    p = theta.clone().requires_grad_(True)
    decoupled = {} if cls is nnopt.AdamW else {"decoupled_weight_decay": True}
    opt = cls([p], lr=0.1, weight_decay=0.3, flat=flat, **decoupled)
    opt.kernels = kernels
    for k in range(1, 4):
        p.grad = torch.zeros_like(p)
        opt.step()
        torch.testing.assert_close(p.detach(), theta * 0.97**k, rtol=1e-14, atol=0)


@pytest.mark.parametrize("flat", FLAT_MODES, ids=["flat", "per-tensor"])
def test_decoupled_decay_is_not_l2(flat):
    """SGD: weight_decay gives theta (1 - lr wd) - lr g; l2 gives theta - lr (g + l2 theta).

    Equal for plain SGD (one step), different once momentum carries the penalty along.
    """
    theta = torch.tensor([1.0, -2.0], dtype=torch.float64)
    g = torch.tensor([0.3, 0.4], dtype=torch.float64)
    out = {}
    for name in ("weight_decay", "l2"):
        p = theta.clone().requires_grad_(True)
        decoupled = name == "weight_decay"
        opt = nnopt.SGD(
            [p], lr=0.1, momentum=0.9, flat=flat, decoupled_weight_decay=decoupled, **{name: 0.5}
        )
        for _ in range(2):
            p.grad = g.clone()
            opt.step()
        out[name] = p.detach()
    # weight_decay: theta1 = 0.95 theta - 0.1 g; theta2 = 0.95 theta1 - 0.1 (0.9 g + g)
    theta1 = 0.95 * theta - 0.1 * g
    torch.testing.assert_close(out["weight_decay"], 0.95 * theta1 - 0.19 * g, rtol=1e-14, atol=0)
    # l2: b1 = g + 0.5 theta; theta1 = theta - 0.1 b1; b2 = 0.9 b1 + g + 0.5 theta1
    b1 = g + 0.5 * theta
    t1 = theta - 0.1 * b1
    b2 = 0.9 * b1 + g + 0.5 * t1
    torch.testing.assert_close(out["l2"], t1 - 0.1 * b2, rtol=1e-14, atol=0)
