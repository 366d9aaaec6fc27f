"""What one step does and does not touch (TestOptimRenewed's step properties): closures,
parameters without gradients, zero gradients, the user's gradients, param groups with their
own options, Tensor learning rates, groups added later, and determinism."""

from __future__ import annotations

import pytest
import torch

from tests.torch_suite import configs
from tests.torch_suite.common import (
    FEW,
    assert_params_close,
    assert_params_equal,
    assert_states_close,
    assign_step,
    backward_step,
    clones,
    grads_for,
    leaves,
    linear_loss,
    linear_problem,
    make_nnopt,
    make_torch,
    nnopt_cls,
    run_side_by_side,
)
from tests.torch_suite.configs import Case


@pytest.mark.parametrize("case", configs.cases())
def test_step_with_closure(case: Case):
    """step(closure) returns the closure's loss, runs it with grad enabled, and steps as
    torch.optim does with the same closure."""
    problems = [linear_problem(case.device) for _ in range(2)]
    opts = [make_nnopt(case, list(problems[0][:2])), make_torch(case.cfg, list(problems[1][:2]))]
    for _ in range(4):
        losses = []
        for opt, (w, b, x) in zip(opts, problems, strict=True):

            def closure(opt=opt, w=w, b=b, x=x):
                assert torch.is_grad_enabled(), "the closure ran without grad enabled"
                opt.zero_grad()
                loss = linear_loss(w, b, x)
                loss.backward()
                return loss

            losses.append(opt.step(closure))
        assert isinstance(losses[0], torch.Tensor), f"step returned {losses[0]!r}, not the loss"
        torch.testing.assert_close(losses[0], losses[1])
        assert_params_close(problems[0][:2], problems[1][:2])


@pytest.mark.parametrize("case", configs.cases())
def test_params_without_grads_are_skipped(case: Case):
    """Parameters that do not require grad, whose grad is None, that are empty (0 elements),
    or frozen halfway, are left alone (and get state only where torch.optim gives them
    some: Adagrad makes it up front), as torch.optim leaves them."""
    shapes = ((4,), (3,), (2, 2), (0,), (5,))
    params = leaves(shapes, device=case.device)
    params[1].requires_grad_(False)
    mine, theirs = clones(params), clones(params)
    ours, ref = make_nnopt(case, mine), make_torch(case.cfg, theirs)
    start = clones(params)
    for t, g in enumerate(grads_for(params, 4)):
        g[1] = g[2] = None
        if t >= 2:  # params[4] frozen from step 3 on
            g[4] = None
            for ps in (mine, theirs):
                ps[4].requires_grad_(False)
        assign_step(ours, mine, g)
        assign_step(ref, theirs, g)
        assert_params_close(mine, theirs, f"step {t + 1}")
    assert_params_equal(mine[1:3], start[1:3], "parameters without gradients")
    assert_states_close(ours, ref, mine, theirs)  # no state where torch keeps none


@pytest.mark.parametrize("case", configs.cases())
def test_zero_grads(case: Case):
    """Zero gradients step as in torch.optim; without weight decay they move nothing."""
    params = leaves(((5, 1), (3,)), device=case.device)
    zeros = [[torch.zeros_like(p) for p in params]]
    _, _, mine, _ = run_side_by_side(case, params, grads=zeros, feed=assign_step)
    if case.cfg.weight_decay == 0:
        assert_params_equal(mine, params, "parameters after a zero-gradient step")


@pytest.mark.parametrize("case", configs.cases())
def test_grads_are_not_modified(case: Case):
    """step never writes into the gradients the user (or backward) provided."""
    params = leaves(FEW, device=case.device)
    opt = make_nnopt(case, params)
    for g in grads_for(params, 2):
        kept = [x.clone() for x in g]
        for p, x in zip(params, g, strict=True):
            p.grad = x
        opt.step()
        assert_params_equal(g, kept, "the user's gradients")
        assert_params_equal([p.grad for p in params], kept, "p.grad")


@pytest.mark.parametrize("case", configs.cases(variants=("weight_decay", "lr")))
def test_param_groups_with_own_options(case: Case):
    """Groups override options: weight_decay=0 for the bias (torch's weight-decay groups),
    or a group at the config's lr beside one at the outer lr=1e-28 (which barely moves)."""
    cfg = case.cfg
    runs = []
    for make in (make_nnopt_groups, make_torch_groups):
        w, b, x = linear_problem(case.device)
        start = torch.randn(2, generator=torch.Generator().manual_seed(4))
        params = [w, b, torch.nn.Parameter(start.to(case.device))]
        kwargs = cfg.kwargs()
        if case.variant == "weight_decay":
            groups = [dict(params=[w], **kwargs), dict(params=[b], **{**kwargs, "weight_decay": 0})]
            outer = {}
        else:
            kwargs.setdefault("lr", 1e-3)
            groups = [dict(params=[w, b], **kwargs), dict(params=[params[2]])]
            outer = {"lr": 1e-28}
        opt = make(case, groups, outer)
        with torch.no_grad():
            initial = linear_loss(w, b, x).item()
        for _ in range(3):
            opt.zero_grad()
            linear_loss(w, b, x).backward()
            params[2].grad = torch.ones_like(params[2])
            opt.step()
        runs.append((params, initial, linear_loss(w, b, x).item()))
    (mine, initial, final), (theirs, _, _) = runs
    assert_params_close(mine, theirs)
    assert (final > initial) if cfg.maximize else (final < initial), "loss went the wrong way"
    if case.variant == "lr":
        torch.testing.assert_close(mine[2].detach().cpu(), start)


def make_nnopt_groups(case: Case, groups, outer):
    if case.cfg.name == "Adagrad" and "initial_accumulator_value" in case.cfg.kwargs():
        # README, differences: torch.optim.Adagrad ignores a group's own value; nnopt uses it.
        pytest.skip("documented difference: a group's initial_accumulator_value is honoured")
    opt = nnopt_cls(case.cfg.name)(groups, **outer, flat=case.flat)
    opt.kernels = case.kernels
    return opt


def make_torch_groups(case: Case, groups, outer):
    return case.cfg.torch_cls(groups, **outer)


@pytest.mark.parametrize("case", configs.cases())
def test_tensor_lr(case: Case):
    """A 0-dim Tensor lr steps exactly as the same float lr, and as torch's Tensor lr; the
    group keeps it a Tensor."""
    lr = case.cfg.base_kwargs.get("lr", case.cfg.torch_cls([torch.zeros(1)]).defaults["lr"])
    lr = float(lr)
    params = leaves(FEW, device=case.device)
    tensor_lr = dict(lr=torch.tensor(lr))
    ours, _, mine, _ = run_side_by_side(case, params, **tensor_lr)
    assert isinstance(ours.param_groups[0]["lr"], torch.Tensor), "the Tensor lr became a float"
    floats = clones(params)
    float_opt = make_nnopt(case, floats, lr=lr)
    for g in grads_for(params):
        backward_step(float_opt, floats, g)
    assert_params_close(mine, floats, "Tensor lr vs float lr")


@pytest.mark.parametrize("case", configs.cases())
def test_add_param_group(case: Case):
    """A group added after some steps takes the defaults and steps as in torch.optim; a
    parameter already present is refused with torch's ValueError."""
    params = leaves(FEW, device=case.device)
    mine, theirs = clones(params), clones(params)
    ours, ref = make_nnopt(case, mine[:2]), make_torch(case.cfg, theirs[:2])
    for t, g in enumerate(grads_for(params, 3)):
        if t == 1:
            ours.add_param_group({"params": mine[2:]})
            ref.add_param_group({"params": theirs[2:]})
        backward_step(ours, mine, g)
        try:
            backward_step(ref, theirs, g)
        except KeyError as exc:
            # An older torch's Adagrad creates its state in the constructor only, so it cannot
            # step a group added later: nothing to compare nnopt's step with.
            pytest.skip(
                f"torch {torch.__version__}'s {case.cfg.name} cannot step an added group "
                f"(KeyError {exc})"
            )
        assert_params_close(mine, theirs, f"step {t + 1}")
    assert_states_close(ours, ref, mine, theirs)
    lacking = set(ref.param_groups[1]) - set(ours.param_groups[1])
    assert not lacking, f"the added group lacks torch's options {sorted(lacking)}"
    with pytest.raises(ValueError):
        ours.add_param_group({"params": [mine[0]]})


@pytest.mark.parametrize("case", configs.cases(configs.default_configs))
def test_deterministic(case: Case):
    """Two runs from the same values give bit-identical parameters and state."""
    runs = []
    for _ in range(2):
        params = leaves(FEW, device=case.device)
        opt = make_nnopt(case, params)
        for g in grads_for(params):
            backward_step(opt, params, g)
        runs.append((opt, params))
    (a, pa), (b, pb) = runs
    assert_params_equal(pa, pb, "parameters of two identical runs")
    assert_states_close(a, b, pa, pb, rtol=0, atol=0)
