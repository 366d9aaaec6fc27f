"""Numerics: nnopt follows torch.optim step by step on PyTorch's own configurations.

Ported from TestOptimRenewed's correctness properties: the trajectory of every optim_db config
(float32 and float64, several shapes, maximize, Tensor lr), complex parameters mixed with real
ones, non-contiguous parameters and gradients, the foreach / forloop / fused implementations,
sparse gradients, the loss going the right way under an LR scheduler, PyTorch's error inputs,
and a clear refusal of the options nnopt cannot honour.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from tests.torch_suite import configs
from tests.torch_suite.common import (
    SHAPES,
    assign_step,
    clones,
    grads_for,
    leaves,
    linear_loss,
    linear_problem,
    make_nnopt,
    make_torch,
    nnopt_cls,
    raises_like,
    run_side_by_side,
    skip_flat,
    torch_refuses,
)
from tests.torch_suite.configs import Case


@pytest.mark.parametrize("case", configs.cases(dtypes=(torch.float32, torch.float64)))
def test_matches_torch(case: Case):
    """Parameters and state equal torch.optim's after every step (backward-fed gradients)."""
    params = leaves(SHAPES, dtype=case.dtype, device=case.device)
    run_side_by_side(case, params)


@pytest.mark.parametrize("case", configs.cases())
def test_complex_matches_torch(case: Case):
    """Complex parameters (with a real one among them) step as torch steps them."""
    skip_flat(case, "complex parameters cannot live in a real flat buffer")
    if not case.cfg.facts["supports_complex"]:
        pytest.skip(f"torch.optim.{case.cfg.name} does not support complex parameters")
    gen = torch.Generator().manual_seed(0)
    params = [
        torch.randn(3, 4, dtype=torch.complex64, generator=gen),
        torch.randn(5, dtype=torch.complex64, generator=gen),
        torch.randn(3, 4, dtype=torch.float32, generator=gen),
    ]
    params = [p.to(case.device).requires_grad_(True) for p in params]
    run_side_by_side(case, params, feed=assign_step)


def _strided(params):
    """Copies of ``params`` that are non-contiguous views (every other element)."""
    out = []
    for p in params:
        base = torch.zeros(*p.shape, 2, dtype=p.dtype, device=p.device)
        base[..., 0] = p.detach()
        out.append(base[..., 0].requires_grad_(p.requires_grad))
    return out


@pytest.mark.parametrize("case", configs.cases(variants=("params", "grads")))
def test_noncontiguous_matches_torch(case: Case):
    """Non-contiguous parameters, or contiguous ones given non-contiguous gradients."""
    shapes = ((7,), (3, 5), (2, 3, 2))
    params = leaves(shapes, device=case.device)
    grads = [_strided(g) for g in grads_for(params)]
    if case.variant == "params":
        skip_flat(case, "non-contiguous parameters cannot be views of one flat buffer")
        mine, theirs = _strided(params), _strided(params)
    else:
        mine, theirs = clones(params), clones(params)
    ours, ref = make_nnopt(case, mine), make_torch(case.cfg, theirs)
    for t, g in enumerate(grads):
        assign_step(ours, mine, g)
        assign_step(ref, theirs, g)
        for i, (a, b) in enumerate(zip(mine, theirs, strict=True)):
            torch.testing.assert_close(
                a.detach(), b.detach(), msg=lambda m, t=t, i=i: f"step {t + 1}, param {i}: {m}"
            )
    if case.variant == "params" and not case.flat:
        assert all(not p.is_contiguous() for p in mine[1:]), "parameters lost their strides"


@pytest.mark.parametrize("case", configs.cases(configs.impl_configs))
def test_impl_flag_matches_torch(case: Case):
    """foreach=True / foreach=False / fused=True are accepted, recorded, and change nothing.

    float64, a 0-dim parameter last (torch's foreach/fused edge case), and one step where no
    parameter has a gradient (a no-op)."""
    cfg = case.cfg
    refused = torch_refuses(cfg)
    if refused is not None:
        with raises_like(type(refused)):
            make_nnopt(case, leaves(((2,),), device=case.device))
        return
    shapes = ((3, 2), (3,), ())
    params = leaves(shapes, dtype=torch.float64, device=case.device)
    grads = grads_for(params, 3)
    grads[1] = [None] * len(params)
    ours, ref, _, _ = run_side_by_side(case, params, grads=grads, feed=assign_step)
    flag, value = next(iter(configs.IMPL_KWARGS[cfg.impl].items()))
    assert ours.param_groups[0][flag] == value == ref.param_groups[0][flag]


@pytest.mark.parametrize("case", configs.config_params(configs.unhonoured_configs))
def test_refuses_unhonoured_option(case: Case):
    """Options nnopt cannot honour raise a ValueError/TypeError that names them (not a
    signature error, and not a silent wrong step)."""
    flag = case.cfg.impl
    with pytest.raises((ValueError, TypeError)) as error:
        make_nnopt(case, leaves(((3,),), device=case.device))
    message = str(error.value)
    assert flag in message, f"the error does not name {flag}: {message}"
    assert "unexpected keyword" not in message, f"{flag} is missing from the signature"


@pytest.mark.parametrize("case", configs.cases(variants=("contiguous", "noncontiguous")))
def test_goes_right_direction(case: Case):
    """6 closure steps under a StepLR schedule lower the loss (raise it with maximize)."""
    contiguous = case.variant == "contiguous"
    if not contiguous:
        skip_flat(case, "non-contiguous parameters cannot be views of one flat buffer")
    w, b, x = linear_problem(case.device, contiguous=contiguous)
    opt = make_nnopt(case, [w, b])
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.9)

    def closure():
        opt.zero_grad()
        loss = linear_loss(w, b, x)
        loss.backward()
        return loss

    with torch.no_grad():
        initial = linear_loss(w, b, x).item()
    for _ in range(6):
        opt.step(closure)
        sched.step()
    with torch.no_grad():
        final = linear_loss(w, b, x).item()
    if case.cfg.maximize:
        assert final > initial, f"maximize: loss went from {initial} to {final}"
    else:
        assert final < initial, f"loss went from {initial} to {final}"


def _sparse_configs(device):
    return configs.sparse_configs(device)


@pytest.mark.parametrize("case", configs.cases(_sparse_configs))
def test_sparse_grads_match_torch(case: Case):
    """Uncoalesced sparse gradients (duplicate indices) give torch's step."""
    params = leaves(((6,), (4, 3)), device=case.device)
    gen = torch.Generator().manual_seed(5)
    grads = []
    for _ in range(2):
        step = []
        for p in params:
            idx = torch.tensor([[0, 2, 2, 1]] + [[1, 0, 0, 2]] * (p.dim() - 1))
            values = torch.randn(4, generator=gen)
            sparse = torch.sparse_coo_tensor(idx, values, p.shape, check_invariants=True)
            step.append(sparse.to(case.device))
        grads.append(step)
    probe = make_torch(case.cfg, clones(params))
    try:
        assign_step(probe, probe.param_groups[0]["params"], grads[0])
    except (RuntimeError, ValueError) as error:
        pytest.skip(f"torch.optim refuses sparse gradients here: {str(error).splitlines()[0]}")
    run_side_by_side(case, params, grads=grads, feed=assign_step, check_state=False)


def _error_params():
    out = []
    for device in configs.DEVICES:
        suffix = "" if device == "cpu" else "-cuda"
        for i, (name, error) in enumerate(configs.error_inputs(device)):
            for layout, flat in configs.LAYOUTS.items():
                pid = f"{name}-{i}-{configs.slug(error[0])[:48]}-{layout}{suffix}"
                out.append(pytest.param(name, error, flat, id=pid))
    return out


@pytest.mark.parametrize(("name", "error", "flat"), _error_params())
def test_errors(name, error, flat):
    """torch's test_errors: each of PyTorch's error inputs raises (or warns) torch's exception
    type with a message matching torch's regex (nnopt's own sentence comes first), checking
    the options before the params (torch passes params=None with a bad lr and expects the
    lr error)."""
    desc, params, kwargs, error_on, error_type, regex = copy.deepcopy(error)
    cls = nnopt_cls(name)
    warns = issubclass(error_type, Warning)
    expect = (
        pytest.warns(error_type, match=regex) if warns else pytest.raises(error_type, match=regex)
    )
    if error_on == "CONSTRUCTION_ERROR":
        with expect:
            cls(params, **kwargs, flat=flat)
    else:
        with warnings.catch_warnings():
            opt = cls(params, **kwargs, flat=flat)
        with expect:
            opt.step()
