"""The drop-in surface (TestOptimRenewed's API properties plus what "drop-in twin" implies):
the constructor signature, defaults and group options as torch's, repr, zero_grad, step
hooks (local and global, with argument rewriting), and parameters keeping their storage."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch.optim.optimizer import (
    register_optimizer_step_post_hook,
    register_optimizer_step_pre_hook,
)

from tests.torch_suite import configs
from tests.torch_suite.common import (
    SHAPES,
    backward_step,
    clones,
    grads_for,
    leaves,
    make_nnopt,
    make_torch,
    nnopt_cls,
)
from tests.torch_suite.configs import Case

POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


@pytest.mark.parametrize("name", configs.OPTIMIZERS)
def test_constructor_signature(name: str):
    """The installed torch's signature: same positional order, keyword-only options and
    defaults; nnopt's own options (``flat``, and arguments this torch lacks that a newer one
    has, as Adam's ``decoupled_weight_decay`` on torch 2.4) are keyword-only extras."""
    theirs = inspect.signature(getattr(torch.optim, name).__init__).parameters
    ours = inspect.signature(nnopt_cls(name).__init__).parameters
    positional = [n for n, p in theirs.items() if p.kind in POSITIONAL]
    ours_positional = [n for n, p in ours.items() if p.kind in POSITIONAL]
    assert ours_positional == positional, f"positional order {ours_positional} != {positional}"
    missing = [n for n in theirs if n not in ours]
    assert not missing, f"missing arguments: {missing}"
    for n, p in theirs.items():
        q = ours[n]
        assert q.kind == p.kind, f"{n} is {q.kind.description}, torch's is {p.kind.description}"
        assert q.default == p.default, f"{n} defaults to {q.default!r}, torch's to {p.default!r}"
    extra = [n for n, q in ours.items() if n not in theirs and q.kind != q.VAR_KEYWORD]
    assert all(ours[n].kind == inspect.Parameter.KEYWORD_ONLY for n in extra), (
        f"nnopt-only arguments must be keyword-only: {extra}"
    )
    assert "flat" in ours and ours["flat"].default is False, "flat must default to False"


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    return type(a) is type(b) and a == b if isinstance(b, bool) else a == b


@pytest.mark.parametrize("case", configs.config_params())
def test_defaults_and_group_options(case: Case):
    """``defaults`` and each param group hold torch's options with torch's values."""
    params = leaves(((2, 3), (2,)), device=case.device)
    ours, ref = make_nnopt(case, params), make_torch(case.cfg, clones(params))
    for where, a, b in (
        ("defaults", ours.defaults, ref.defaults),
        ("param_groups[0]", ours.param_groups[0], ref.param_groups[0]),
    ):
        for key, value in b.items():
            if key == "params":
                continue
            assert key in a, f"{where} lacks {key!r}"
            assert _same(a[key], value), f"{where}[{key!r}] = {a[key]!r}, torch's {value!r}"


@pytest.mark.parametrize("case", configs.config_params())
def test_repr(case: Case):
    """repr names the class and lists every group option as torch.optim's repr does."""
    params = leaves(((2, 3), (2,)), device=case.device)
    ours, ref = make_nnopt(case, params), make_torch(case.cfg, clones(params))
    text = repr(ours)
    assert text.startswith(f"{case.cfg.name} ("), text.splitlines()[0]
    missing = [line for line in repr(ref).splitlines() if line not in text.splitlines()]
    assert not missing, f"repr lacks torch's lines {missing}"


@pytest.mark.parametrize("case", configs.cases(configs.default_configs))
def test_zero_grad(case: Case):
    """zero_grad() sets gradients to None (torch's default); set_to_none=False zeroes them
    in place; neither changes the parameters."""
    default = inspect.signature(nnopt_cls(case.cfg.name).zero_grad)
    assert default.parameters["set_to_none"].default is True, "set_to_none must default to True"
    params = leaves(SHAPES, device=case.device)
    opt = make_nnopt(case, params)
    grads = grads_for(params, 3)
    backward_step(opt, params, grads[0])
    before = [p.detach().clone() for p in params]
    opt.zero_grad()
    assert all(p.grad is None for p in params), "zero_grad() left gradients"
    backward_step(opt, params, grads[1])
    sum(p.sum() for p in params).backward()
    opt.zero_grad(set_to_none=False)
    for i, p in enumerate(params):
        assert p.grad is not None and not p.grad.any(), f"params[{i}].grad not zeroed"
        assert not p.grad.requires_grad
    assert any(not torch.equal(p, q) for p, q in zip(params, before, strict=True))


@pytest.mark.parametrize("case", configs.cases(configs.default_configs))
def test_step_hooks(case: Case):
    """Global and local step pre/post hooks run in torch's order with the optimizer; a pre
    hook's (args, kwargs) replace step's; removed hooks no longer run."""
    params = leaves(((3,),), device=case.device)
    opt = make_nnopt(case, params)
    calls = []

    def closure():
        calls.append("closure")
        opt.zero_grad()
        loss = (params[0] ** 2).sum()
        loss.backward()
        return loss

    def pre(o, args, kwargs):
        calls.append(("pre", o is opt))
        return args, {"closure": closure}

    handles = [
        register_optimizer_step_pre_hook(lambda o, a, k: calls.append(("global_pre", o is opt))),
        register_optimizer_step_post_hook(lambda o, a, k: calls.append(("global_post", o is opt))),
        opt.register_step_pre_hook(pre),
        opt.register_step_post_hook(lambda o, a, k: calls.append(("post", o is opt))),
    ]
    try:
        loss = opt.step()
    finally:
        for h in handles:
            h.remove()
    expected = [("global_pre", True), ("pre", True), "closure", ("post", True)]
    assert calls == [*expected, ("global_post", True)]
    assert isinstance(loss, torch.Tensor), "the pre hook's closure was not used"
    calls.clear()
    params[0].grad = torch.ones_like(params[0])
    opt.step()
    assert calls == [], f"removed hooks ran: {calls}"


@pytest.mark.parametrize("case", configs.cases(configs.default_configs, layouts=("loose",)))
def test_parameters_keep_their_storage(case: Case):
    """By default (no ``flat`` argument) parameters are neither moved nor replaced."""
    params = leaves(SHAPES, device=case.device)
    pointers = [p.data_ptr() for p in params]
    opt = nnopt_cls(case.cfg.name)(params, **case.cfg.kwargs())
    opt.kernels = case.kernels
    for g in grads_for(params):
        backward_step(opt, params, g)
    assert [p.data_ptr() for p in params] == pointers, "parameters were moved"
    assert all(p is q for p, q in zip(opt.param_groups[0]["params"], params, strict=True))
