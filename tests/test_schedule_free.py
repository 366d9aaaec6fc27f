"""ScheduleFreeAdamW and ScheduleFreeSGD against their reference, the ``schedulefree``
package (1.4.1): step for step with train()/eval() moves between, in every layout and kernel
mode; state dicts both ways; the modes. (The generic tests run them through
``optim_cases.py`` against a float64 reference written from the paper.)"""

from __future__ import annotations

import copy

import pytest
import schedulefree
import torch

import nnopt

SHAPES = [(), (5,), (7, 3), (2, 3, 3, 3), (20001,)]
ADAMW = dict(lr=0.01, betas=(0.8, 0.99), eps=1e-8, weight_decay=0.1, warmup_steps=5, r=1.0,
             weight_lr_power=2.0)  # fmt: skip
SGD = dict(lr=0.1, momentum=0.8, weight_decay=0.1, warmup_steps=5, r=0.5, weight_lr_power=1.0)
PAIRS = {
    "adamw": (nnopt.ScheduleFreeAdamW, schedulefree.AdamWScheduleFree, ADAMW),
    "sgd": (nnopt.ScheduleFreeSGD, schedulefree.SGDScheduleFree, SGD),
}


def params(dtype=torch.float32, seed=0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=dtype).requires_grad_() for s in SHAPES]


def clone(ps: list[torch.Tensor]) -> list[torch.Tensor]:
    return [p.detach().clone().requires_grad_() for p in ps]


def feed(steps: int, dtype=torch.float32, seed=1):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        yield [torch.randn(s, generator=g, dtype=dtype) for s in SHAPES]


def largest_difference(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max((x.detach() - y.detach()).abs().max().item() for x, y in zip(a, b, strict=True))


def run_pair(ours, theirs, a, b, steps: int = 25, foreach: bool = True) -> float:
    """Both optimizers take the same gradients (each its own copy: the package overwrites
    its gradient); every 6 steps both go to eval mode and back, compared at x and at y."""
    worst = 0.0
    for t, grads in enumerate(feed(steps, a[0].dtype), start=1):
        for p, q, g in zip(a, b, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        ours.step()
        theirs.step()
        worst = max(worst, largest_difference(a, b))
        if t % 6 == 0:
            ours.eval()
            theirs.eval()
            worst = max(worst, largest_difference(a, b))
            ours.train()
            theirs.train()
    return worst


@pytest.mark.parametrize("name", PAIRS)
@pytest.mark.parametrize("flat", [False, True], ids=["per-tensor", "flat"])
@pytest.mark.parametrize("kernels", ["eager", "native", "auto"])
@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "for-loop"])
def test_matches_the_package_step_for_step(name, flat, kernels, foreach):
    """float32, 25 steps with warm-up, r, decay: the eager rule is the package bit for bit
    (its foreach path and its for-loop alike); the native kernels within float32 rounding."""
    ours_cls, theirs_cls, options = PAIRS[name]
    a = params()
    b = clone(a)
    ours = ours_cls(a, flat=flat, **options)
    ours.kernels = kernels
    theirs = theirs_cls(b, foreach=foreach, **options)
    theirs.train()
    worst = run_pair(ours, theirs, a, b)
    if kernels == "eager":
        assert worst == 0.0
    else:
        assert worst < 5e-6, worst


@pytest.mark.parametrize("name", PAIRS)
def test_float64_matches_to_rounding(name):
    ours_cls, theirs_cls, options = PAIRS[name]
    a = params(torch.float64)
    b = clone(a)
    theirs = theirs_cls(b, **options)
    theirs.train()
    ours = ours_cls(a, **options)
    ours.kernels = "native"
    assert run_pair(ours, theirs, a, b) < 1e-13


@pytest.mark.parametrize("name", PAIRS)
def test_param_groups_and_defaults(name):
    """Two groups with their own options; the package's defaults where none is given."""
    ours_cls, theirs_cls, options = PAIRS[name]
    a = params()
    b = clone(a)
    second = {"lr": options["lr"] / 2, "weight_decay": 0.0, "warmup_steps": 0}
    ours = ours_cls([{"params": a[:2]}, {"params": a[2:], **second}], lr=options["lr"])
    theirs = theirs_cls([{"params": b[:2]}, {"params": b[2:], **second}], lr=options["lr"])
    theirs.train()
    assert run_pair(ours, theirs, a, b) < 5e-6


@pytest.mark.parametrize("name", PAIRS)
@pytest.mark.parametrize("flat", [False, True], ids=["per-tensor", "flat"])
def test_state_dicts_cross_both_ways(name, flat):
    """The package's checkpoint (saved in eval mode, as its docs say) resumes in nnopt, and
    nnopt's in the package: both go on as the uninterrupted reference."""
    ours_cls, theirs_cls, options = PAIRS[name]
    ref = params()
    reference = theirs_cls(ref, **options)
    reference.train()
    grads = list(feed(12))

    def steps(opt, ps, part):
        for g in part:
            for p, gi in zip(ps, g, strict=True):
                p.grad = gi.clone()
            opt.step()

    steps(reference, ref, grads)
    for first, second in ((theirs_cls, ours_cls), (ours_cls, theirs_cls)):
        a = params()
        opt = first(a, **options) if first is theirs_cls else first(a, flat=flat, **options)
        opt.train()
        steps(opt, a, grads[:6])
        opt.eval()
        saved = copy.deepcopy((opt.state_dict(), [p.detach().clone() for p in a]))
        b = [p.clone().requires_grad_() for p in saved[1]]
        resumed = second(b, flat=flat, **options) if second is ours_cls else second(b, **options)
        resumed.load_state_dict(saved[0])
        assert not resumed.param_groups[0]["train_mode"]
        resumed.train()
        steps(resumed, b, grads[6:])
        assert largest_difference(b, ref) < 5e-6, (first.__name__, second.__name__)


def test_starts_in_train_mode_and_refuses_a_step_in_eval_mode():
    p = torch.nn.Parameter(torch.ones(3))
    opt = nnopt.ScheduleFreeAdamW([p])
    assert opt.training
    p.grad = torch.ones(3)
    opt.step()
    opt.eval()
    assert not opt.training
    with pytest.raises(RuntimeError, match=r"eval mode.*call optimizer.train\(\)"):
        opt.step()


def test_eval_moves_to_the_average_and_train_back():
    """x = (y - (1 - beta) z) / beta, and back; eval() twice moves once."""
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = nnopt.ScheduleFreeSGD([p], lr=0.1, momentum=0.9)
    for _ in range(3):
        p.grad = torch.tensor([1.0, 0.5], dtype=torch.float64)
        opt.step()
    y, z = p.detach().clone(), opt.state[p]["z"].clone()
    opt.eval()
    opt.eval()
    torch.testing.assert_close(p.detach(), (y - 0.1 * z) / 0.9, rtol=1e-14, atol=1e-14)
    opt.train()
    torch.testing.assert_close(p.detach(), y, rtol=1e-14, atol=1e-14)


def test_a_group_added_later_joins_the_current_mode():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    opt = nnopt.ScheduleFreeSGD([a])
    opt.eval()
    opt.add_param_group({"params": [b]})
    assert opt.param_groups[1]["train_mode"] is False


@pytest.mark.parametrize("cls", [nnopt.ScheduleFreeAdamW, nnopt.ScheduleFreeSGD])
def test_beta_zero_is_refused_by_name(cls):
    p = [torch.nn.Parameter(torch.ones(2))]
    args, name = ({"betas": (0.0, 0.999)}, "betas\\[0\\]") if cls is nnopt.ScheduleFreeAdamW else (
        {"momentum": 0.0}, "momentum")  # fmt: skip
    with pytest.raises(ValueError, match=f"{name} must be in \\(0, 1\\)"):
        cls(p, **args)
