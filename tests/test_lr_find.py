"""The learning-rate range test: its suggestion, its stopping rule and its exact restore."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import nnopt
from nnopt.experiments.lr_find import lr_range_test, smooth, smooth_centered, suggest, sweep_lrs


def test_sweep_is_exponential_between_the_bounds():
    lrs = sweep_lrs(1e-6, 1.0, 7)
    np.testing.assert_allclose(lrs, [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0], rtol=1e-12)


def test_smoothing_is_debiased():
    # A constant loss must come out unchanged: no pull towards the zero start.
    assert smooth([2.0] * 10, beta=0.9) == pytest.approx([2.0] * 10)
    s = smooth([1.0, 3.0], beta=0.5)
    assert s == pytest.approx([1.0, (0.5 * 0.5 * 1.0 + 0.5 * 3.0) / (1 - 0.25)])


def test_suggestion_is_the_steepest_point_of_a_known_curve():
    lrs = sweep_lrs(1e-5, 1e1, 200)
    steepest = 3e-3
    # loss falls as a tanh in log(lr), fastest exactly at `steepest`
    losses = [2.0 - math.tanh(2 * (math.log(lr) - math.log(steepest))) for lr in lrs]
    found = suggest(list(lrs), losses)
    assert found == pytest.approx(steepest, rel=0.05)


def test_centered_smoothing_finds_the_steepest_point_of_a_noisy_sweep_without_lag():
    # 100 steps over 7 decades, as lr-find's defaults: the one-sided average lags by ~0.6
    # decades, the zero-phase one does not.
    lrs = sweep_lrs(1e-6, 10.0, 100)
    steepest = 3e-3
    noise = np.random.default_rng(0).standard_normal(len(lrs))
    losses = [
        2.0 - math.tanh(math.log(lr) - math.log(steepest)) + 0.1 * e
        for lr, e in zip(lrs, noise, strict=True)
    ]
    assert suggest(list(lrs), smooth_centered(losses)) == pytest.approx(steepest, rel=0.25)
    heavy = smooth_centered(losses, beta=0.98)
    assert suggest(list(lrs), heavy) == pytest.approx(steepest, rel=0.5)
    assert suggest(list(lrs), smooth(losses)) > 3 * steepest  # what the lag would give
    assert smooth_centered([2.0] * 10, beta=0.9) == pytest.approx([2.0] * 10)


def test_suggestion_ignores_falls_after_the_minimum():
    # Descent (steepest at 1e-3), a minimum at 1e-1, then a diverging loss that spikes and
    # falls back steeply: the fall after the minimum must not be taken.
    lrs = list(sweep_lrs(1e-6, 10.0, 100))
    losses = []
    for lr in lrs:
        x = math.log10(lr)
        if x < -1:
            losses.append(2.0 - math.tanh(2 * (x + 3)))
        else:
            losses.append(1.0 + 50 * (x + 1) ** 2 * (1.5 + math.cos(12 * x)))
    assert suggest(lrs, losses) == pytest.approx(1e-3, rel=0.1)


def make_problem(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 3))
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(512, 10, generator=g), torch.randint(0, 3, (512,), generator=g)
    return model, x, y


def batch(x, y, i, size=32):
    start = (i * size) % len(x)
    return x[start : start + size], y[start : start + size]


def train(model, opt, x, y, steps, start=0):
    losses = []
    for i in range(start, start + steps):
        xb, yb = batch(x, y, i)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda ps: nnopt.Adam(ps, lr=nnopt_schedule(), weight_decay=1e-2),
        lambda ps: nnopt.SGD(ps, lr=0.05, momentum=0.9, flat=False),
        lambda ps: torch.optim.Adam(ps, lr=1e-3),
    ],
    ids=["nnopt-adam-scheduled", "nnopt-sgd-per-tensor", "torch-adam"],
)
def test_training_after_lr_find_is_bitwise_identical(make_opt):
    model_a, x, y = make_problem()
    opt_a = make_opt(model_a.parameters())
    train(model_a, opt_a, x, y, 5)
    torch.manual_seed(123)
    losses_a = train(model_a, opt_a, x, y, 15, start=5)

    model_b, _, _ = make_problem()
    opt_b = make_opt(model_b.parameters())
    train(model_b, opt_b, x, y, 5)
    torch.manual_seed(123)
    result = lr_range_test(
        model_b,
        opt_b,
        lambda i: batch(x, y, i + 7),
        nn.functional.cross_entropy,
        min_lr=1e-5,
        max_lr=10.0,
        steps=40,
    )
    assert len(result.lrs) >= 10
    losses_b = train(model_b, opt_b, x, y, 15, start=5)
    assert losses_a == losses_b
    for a, b in zip(model_a.parameters(), model_b.parameters(), strict=True):
        assert torch.equal(a, b)
    assert opt_a.param_groups[0]["lr"] == opt_b.param_groups[0]["lr"]


def nnopt_schedule():
    return lambda step: 1e-3 * 0.9**step


def test_sweep_stops_when_the_loss_blows_up():
    model, x, y = make_problem()
    opt = nnopt.SGD(model.parameters(), lr=0.1)
    result = lr_range_test(
        model,
        opt,
        lambda i: batch(x, y, i),
        nn.functional.cross_entropy,
        min_lr=1e-4,
        max_lr=1e4,
        steps=100,
    )
    assert result.stopped_early
    assert len(result.lrs) < 100
    online = smooth(result.losses)  # the one-sided average the stopping rule watches
    assert online[-1] > 4 * min(online[:-1]) or not math.isfinite(online[-1])
    assert all(map(math.isfinite, result.smoothed[:-1])) and result.smoothed[-1] == math.inf
    assert 1e-4 < result.suggestion < 1e4
    assert result.min_over_10 < result.lrs[-1]
