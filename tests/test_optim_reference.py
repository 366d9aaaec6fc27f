"""L1 and decoupled decay on toy cases, against closed forms (exact zeros, exact decay).

Every row against its float64 reference of the seed's / paper's formula, step for step, is
``test_optim_cases.py::test_matches_float64_reference`` (driven by ``optim_cases.py``).
"""

from __future__ import annotations

import pytest
import torch
from optim_cases import CASES
from optim_helpers import FLAT_MODES, KERNEL_MODES

import nnopt

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
@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_decoupled_decay_value(case, flat, kernels):
    """With a zero gradient the rule moves nothing and theta <- theta * (1 - lr * wd) exactly."""
    if case.decay_in_rule:
        pytest.skip("its weight_decay is the rule's own (schedule-free: at y, through z)")
    shape = case.shapes([(3,)])[0]  # (a matrix for torch's Muon)
    theta = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64).reshape(shape)
    p = theta.clone().requires_grad_(True)
    implied = case.implied.get("decoupled_weight_decay")  # AdamW takes no such argument
    decoupled = {} if implied else {"decoupled_weight_decay": True}
    opt = case.table_row.build([p], lr=0.1, weight_decay=0.3, flat=flat, **decoupled)
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
