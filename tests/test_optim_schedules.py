"""Schedules and plateau control inside nnopt optimizers: lr callables, the plateau scale,
their state in the optimizer's state_dict, and torch's own schedulers on nnopt optimizers."""

from __future__ import annotations

import io

import pytest
import torch

import nnopt
from nnopt import schedules
from nnopt.schedules import ReduceOnPlateau


def problem(seed: int = 0) -> tuple[list[torch.Tensor], torch.Generator]:
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(5, 3, generator=g, requires_grad=True), torch.randn(7, generator=g)]
    params[1].requires_grad_(True)
    return params, torch.Generator().manual_seed(seed + 1)


def fill_grads(params: list[torch.Tensor], g: torch.Generator) -> None:
    for p in params:
        p.grad = torch.randn(p.shape, generator=g)


def test_a_schedule_sets_the_lr_of_every_step_and_matches_manual_lrs():
    schedule = schedules.join(
        [schedules.linear_warmup(0.1, 4), schedules.cosine(0.1, 10, final_lr=0.01)], [4]
    )
    ours, g1 = problem()
    theirs, g2 = problem()
    opt = nnopt.SGD(ours, lr=schedule, momentum=0.9)
    ref = torch.optim.SGD(theirs, lr=0.0, momentum=0.9)
    seen = []
    for step in range(16):
        fill_grads(ours, g1)
        fill_grads(theirs, g2)
        opt.step()
        seen.append(opt.param_groups[0]["lr"])
        for group in ref.param_groups:
            group["lr"] = schedule(step)
        ref.step()
    assert seen == [schedule(step) for step in range(16)]
    assert seen[0] == 0.0 and seen[4] == pytest.approx(0.1) and seen[-1] == pytest.approx(0.01)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_per_group_schedules():
    params, g = problem()
    opt = nnopt.Adam(
        [{"params": [params[0]], "lr": schedules.step_decay(0.1, 2, 0.5)}, {"params": [params[1]]}],
        lr=0.01,
    )
    lrs = []
    for _ in range(5):
        fill_grads(params, g)
        opt.step()
        lrs.append([group["lr"] for group in opt.param_groups])
    assert lrs == [[0.1, 0.01], [0.1, 0.01], [0.05, 0.01], [0.05, 0.01], [0.025, 0.01]]


def test_the_plateau_scale_multiplies_the_active_schedule_and_stops_at_min_lr():
    params, g = problem()
    opt = nnopt.SGD(params, lr=schedules.exponential_decay(1.0, 0.9))
    opt.plateau = ReduceOnPlateau(patience=0, factor=0.5, min_lr=0.2)
    lrs = []
    for metric in [1.0, 2.0, 2.0, 2.0, 2.0]:  # no improvement after the first: halve each time
        fill_grads(params, g)
        opt.step()
        lrs.append(opt.param_groups[0]["lr"])
        opt.plateau.update(metric)
    # lr_t = 0.9^t * scale, scale halving after each bad evaluation, floored at min_lr
    expected = [1.0, 0.9, 0.81 * 0.5, max(0.729 * 0.25, 0.2), max(0.6561 * 0.125, 0.2)]
    assert lrs == pytest.approx(expected)


def test_plateau_on_a_constant_lr():
    params, g = problem()
    opt = nnopt.Adam(params, lr=0.01)
    opt.plateau = ReduceOnPlateau(mode="max", patience=1, factor=0.1)
    lrs = []
    for metric in [0.5, 0.6, 0.6, 0.6, 0.6, 0.6]:
        fill_grads(params, g)
        opt.step()
        lrs.append(opt.param_groups[0]["lr"])
        opt.plateau.update(metric)
    assert lrs == pytest.approx([0.01, 0.01, 0.01, 0.01, 0.001, 0.001])


def make(params, flat=True):
    opt = nnopt.Adam(params, lr=schedules.cosine(0.05, 12), weight_decay=0.01, flat=flat)
    opt.plateau = ReduceOnPlateau(patience=1, factor=0.5)
    return opt


@pytest.mark.parametrize("flat", [True, False])
def test_schedule_step_and_plateau_state_resume_exactly(flat):
    metrics = [3.0, 2.0, 2.5, 2.5, 2.4, 2.6, 2.6, 2.6, 1.0, 1.0, 1.0, 1.0]
    full, g_full = problem()
    opt = make(full, flat)
    for metric in metrics:
        fill_grads(full, g_full)
        opt.step()
        opt.plateau.update(metric)

    cut, g_cut = problem()
    opt_a = make(cut, flat)
    for metric in metrics[:5]:
        fill_grads(cut, g_cut)
        opt_a.step()
        opt_a.plateau.update(metric)
    buffer = io.BytesIO()
    torch.save(opt_a.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    assert saved["nnopt"]["step"] == 5
    assert saved["nnopt"]["plateau"]["scale"] == opt_a.plateau.scale

    resumed = [p.detach().clone().requires_grad_(True) for p in cut]
    opt_b = make(resumed, flat)
    opt_b.load_state_dict(saved)
    assert opt_b.step_count == 5 and opt_b.plateau.scale == opt_a.plateau.scale
    for metric in metrics[5:]:
        fill_grads(resumed, g_cut)
        opt_b.step()
        opt_b.plateau.update(metric)
    for a, b in zip(full, resumed, strict=True):
        assert torch.equal(a, b)
    assert opt_b.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_torch_reduce_lr_on_plateau_drives_an_nnopt_optimizer_like_a_torch_one():
    ours, g1 = problem()
    theirs, g2 = problem()
    opt, ref = nnopt.SGD(ours, lr=0.1), torch.optim.SGD(theirs, lr=0.1)
    sched_ours = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    sched_ref = torch.optim.lr_scheduler.ReduceLROnPlateau(ref, patience=0, factor=0.5)
    for metric in [1.0, 1.0, 0.5, 0.7, 0.7]:
        fill_grads(ours, g1)
        fill_grads(theirs, g2)
        opt.step()
        ref.step()
        sched_ours.step(metric)
        sched_ref.step(metric)
        assert opt.param_groups[0]["lr"] == ref.param_groups[0]["lr"]
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b)


def test_a_schedule_giving_a_negative_lr_is_reported():
    params, g = problem()
    opt = nnopt.SGD(params, lr=lambda step: 0.1 - 0.1 * step)
    fill_grads(params, g)
    opt.step()
    opt.step()
    with pytest.raises(ValueError, match="schedule gave lr=-0.1 at step 2"):
        opt.step()
