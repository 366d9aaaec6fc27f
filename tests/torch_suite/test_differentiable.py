"""Differentiable steps (``differentiable=True``): gradients through ``opt.step()``.

Ported from what torch's ``TestDifferentiableOptimizer`` (test/optim/test_optim.py) checks:
``gradcheck`` of one step as a function of the parameter, its gradient and the optimizer's
state (float64), and of two training steps as a function of Tensor hyperparameters (lr,
weight_decay, betas) that require grad. Beyond torch's file: the gradients equal those through
torch.optim's own differentiable step, in every layout and kernel mode (a differentiable group
never takes a kernel or a flat buffer), and the mistakes torch refuses are refused alike.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor
from torch.autograd import gradcheck

from tests.torch_suite import configs
from tests.torch_suite.common import nnopt_cls

F64 = torch.float64
# (optimizer, kwargs): torch's TestDifferentiableOptimizer configurations for the twins,
# plus the options it leaves out (dampening, Nesterov, coupled decay in Adam, L2 in Adagrad).
ONE_STEP = [
    ("SGD", {"lr": 0.9}),
    ("SGD", {"lr": 0.9, "momentum": 0.9, "dampening": 0.2, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.9, "momentum": 0.9, "nesterov": True, "maximize": True}),
    ("Adam", {"lr": 0.9, "amsgrad": True}),
    ("Adam", {"lr": 0.9, "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.9, "amsgrad": True}),
    (
        "RMSprop",
        {"lr": 0.9, "maximize": True, "momentum": 0.9, "centered": True, "weight_decay": 0.1},
    ),
    ("RMSprop", {"lr": 0.9}),
    ("Adagrad", {"lr": 0.9, "weight_decay": 0.1}),
    ("Adagrad", {"lr": 0.9, "lr_decay": 0.1}),
    ("NAdam", {"lr": 0.9, "weight_decay": 0.1, "momentum_decay": 6e-3}),
    ("NAdam", {"lr": 0.9, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("RAdam", {"lr": 0.9, "weight_decay": 0.1}),
    ("RAdam", {"lr": 0.9, "weight_decay": 0.1, "decoupled_weight_decay": True}),
]
# (optimizer, hyperparameters given as Tensors that require grad): torch's multistep tests.
HYPER = [
    ("SGD", ("lr",)),
    ("SGD", ("weight_decay",)),
    ("SGD", ("weight_decay", "lr")),
    ("Adam", ("lr",)),
    ("Adam", ("weight_decay",)),
    ("Adam", ("betas", "lr")),
    ("Adam", ("lr", "weight_decay", "betas")),
    ("AdamW", ("lr",)),
    ("AdamW", ("weight_decay",)),
    ("AdamW", ("betas",)),
    ("AdamW", ("lr", "weight_decay", "betas")),
]
HYPER_VALUES = {"lr": 0.001, "weight_decay": 0.9, "betas": (0.9, 0.999)}
MODES = [(flat, mode) for flat in (False, True) for mode in configs.KERNELS]


def _rand(seed: int, *shape: int, scale: float = 1.0) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (scale * torch.rand(shape or (10,), generator=gen, dtype=F64)).requires_grad_()


def _state(name: str, kwargs: dict[str, Any]) -> dict[str, Tensor]:
    """A state as torch's tests give it: every tensor requires grad, the step does not."""
    step = {"step": torch.tensor(10.0, dtype=F64)}
    if name == "SGD":
        return {"momentum_buffer": _rand(10)}
    if name in ("NAdam", "RAdam"):  # (NAdam's product a count, as the step: no grad)
        product = {"mu_product": torch.tensor(0.5, dtype=F64)} if name == "NAdam" else {}
        return {**step, "exp_avg": _rand(11), "exp_avg_sq": _rand(12), **product}
    if name in ("Adam", "AdamW"):
        max_sq = {"max_exp_avg_sq": _rand(13)} if kwargs.get("amsgrad") else {}
        return {**step, "exp_avg": _rand(11), "exp_avg_sq": _rand(12), **max_sq}
    if name == "RMSprop":
        state = {"step": torch.zeros((), dtype=F64), "square_avg": _rand(11)}
        if kwargs.get("momentum"):
            state["momentum_buffer"] = _rand(12)
        if kwargs.get("centered"):  # small: sqrt(E - gbar^2) stays real
            state["grad_avg"] = _rand(13, scale=1e-2)
        return state
    return {**step, "sum": _rand(11)}


def _stepper(p, grad, state, cls, kwargs, modes):
    """A non-leaf copy of p with ``grad``, and its optimizer holding copies of ``state``
    (``modes``: (flat, kernel mode) for nnopt, None for torch.optim)."""
    p = p.clone()
    p.grad = grad
    opt = cls([p], **kwargs, **({"flat": modes[0]} if modes else {}))
    if modes:
        opt.kernels = modes[1]
    opt.state[p].update({k: v.clone() for k, v in state.items()})
    return p, opt


def _one_step(p, grad, state, cls, kwargs, modes, *state_tensors):
    """p and the state after one step, as functions of p, its gradient and the state."""
    p, opt = _stepper(p, grad, state, cls, kwargs, modes)
    opt.step()
    return (p,) + tuple(v for v in opt.state[p].values() if v.requires_grad)


def _two_steps(p, grad, state, cls, kwargs, modes, *hyper):
    """The loss after two training steps, as a function of Tensor hyperparameters (torch's
    multistep test: backward with create_graph, step, zero_grad, twice)."""
    p, opt = _stepper(p, grad, state, cls, kwargs, modes)
    x, y = torch.tensor([1.0], dtype=F64), torch.tensor([2.0], dtype=F64)
    for _ in range(2):
        loss = torch.nn.functional.mse_loss(x * p.sum(), y)
        loss.backward(inputs=(p,), create_graph=True)
        opt.step()
        opt.zero_grad()
    return loss


def _hyper_kwargs(names: tuple[str, ...]) -> tuple[dict[str, Any], list[Tensor]]:
    kwargs: dict[str, Any] = {"differentiable": True}
    leaves: list[Tensor] = []
    for name in names:
        value = HYPER_VALUES[name]
        if name == "betas":
            kwargs[name] = tuple(torch.tensor(b, dtype=F64, requires_grad=True) for b in value)
            leaves += kwargs[name]
        else:
            kwargs[name] = torch.tensor(value, dtype=F64, requires_grad=True)
            leaves.append(kwargs[name])
    return kwargs, leaves


def _ids(cases):
    return [f"{name}-" + "-".join(f"{k}={v}" for k, v in kw.items()) for name, kw in cases]


@pytest.mark.parametrize(("name", "kwargs"), ONE_STEP, ids=_ids(ONE_STEP))
def test_one_step_gradcheck(name: str, kwargs: dict[str, Any]):
    """torch's TestDifferentiableOptimizer.test_<optimizer>: gradcheck of one step."""
    state = _state(name, kwargs)
    p, grad = _rand(1), _rand(2)
    kwargs = {**kwargs, "differentiable": True}
    assert gradcheck(_one_step, (p, grad, state, nnopt_cls(name), kwargs, None, *state.values()))


@pytest.mark.parametrize(
    ("flat", "mode"), MODES, ids=[f"{'flat' if f else 'loose'}-{m}" for f, m in MODES]
)
@pytest.mark.parametrize(("name", "kwargs"), ONE_STEP, ids=_ids(ONE_STEP))
def test_one_step_gradients_match_torch(name: str, kwargs: dict[str, Any], flat: bool, mode: str):
    """The values and the gradients (a vector-Jacobian product with every input: parameter,
    gradient, state) of one differentiable step equal torch.optim's, in every layout and
    kernel mode."""
    kwargs = {**kwargs, "differentiable": True}
    results = []
    for cls, modes in ((nnopt_cls(name), (flat, mode)), (getattr(torch.optim, name), None)):
        state = _state(name, kwargs)
        p, grad = _rand(1), _rand(2)
        inputs = (p, grad, *state.values())
        outputs = _one_step(p, grad, state, cls, kwargs, modes, *state.values())
        cotangents = [torch.ones_like(o) * (i + 1) for i, o in enumerate(outputs)]
        grads = torch.autograd.grad(outputs, [t for t in inputs if t.requires_grad], cotangents)
        results.append(([o.detach() for o in outputs], grads))
    (ours, our_grads), (theirs, their_grads) = results
    assert len(ours) == len(theirs)
    for a, b in zip(ours + list(our_grads), theirs + list(their_grads), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("name", "names"), HYPER, ids=[f"{n}-{'-'.join(h)}" for n, h in HYPER])
def test_hyperparameter_gradients(name: str, names: tuple[str, ...]):
    """torch's test_<optimizer>_differentiable_<hyperparameter>: gradcheck of two training
    steps as a function of Tensor hyperparameters, and those gradients equal torch's."""
    kwargs, leaves = _hyper_kwargs(names)
    state = {k: v for k, v in _state(name, {}).items() if k != "momentum_buffer"}
    p, grad = _rand(1), _rand(2)
    cls = nnopt_cls(name)

    def loss_of(*hyper):
        swapped = dict(kwargs)
        it = iter(hyper)
        for key in names:
            swapped[key] = (next(it), next(it)) if key == "betas" else next(it)
        return _two_steps(p, grad, state, cls, swapped, None)

    assert gradcheck(loss_of, tuple(leaves))
    ours = torch.autograd.grad(_two_steps(p, grad, state, cls, kwargs, None), leaves)
    try:
        theirs = torch.autograd.grad(
            _two_steps(p, grad, state, getattr(torch.optim, name), kwargs, None), leaves
        )
    except (TypeError, RuntimeError) as exc:
        # An older torch's differentiable step takes Python numbers only (add_(alpha=Tensor)
        # is refused) or updates a tensor autograd still needs: there is nothing to compare
        # with; nnopt's gradients were checked by gradcheck above.
        pytest.skip(
            f"torch {torch.__version__}'s differentiable {name} cannot differentiate by "
            f"{', '.join(names)} ({type(exc).__name__}); nnopt's gradcheck passed"
        )
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", configs.OPTIMIZERS)
def test_leaf_parameter_is_refused_as_torch_refuses_it(name: str):
    """A differentiable step updates the parameter in place, so autograd refuses a leaf that
    requires grad, for torch.optim and nnopt alike (meta-learning steps a non-leaf copy)."""
    for cls in (nnopt_cls(name), getattr(torch.optim, name)):
        p = torch.nn.Parameter(torch.rand(3, dtype=F64))
        p.grad = torch.rand(3, dtype=F64)
        opt = cls([p], lr=0.1, differentiable=True)
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            opt.step()


@pytest.mark.parametrize("name", configs.OPTIMIZERS)
def test_non_differentiable_step_builds_no_graph(name: str):
    """Without differentiable=True the step runs under no_grad, as torch's: a parameter
    stepped with a gradient that requires grad gets no grad_fn."""
    w = torch.rand(4, dtype=F64, requires_grad=True)
    p = w.clone().detach().requires_grad_()
    p.grad = torch.rand(4, dtype=F64, requires_grad=True)
    nnopt_cls(name)([p], lr=0.1).step()
    assert p.grad_fn is None


def _differentiable_configs(device: str) -> list[configs.Config]:
    return [
        configs.Config(c.name, c.desc, c.base_kwargs, c.facts, device, "differentiable")
        for c in configs.all_configs(device)
        if "differentiable" in c.facts["supported_impls"]
    ]


# The parameter that never gets a gradient is a non-leaf: reading its .grad (None), as every
# optimizer's step does, makes torch warn.
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf")
@pytest.mark.parametrize("case", configs.cases(_differentiable_configs))
def test_every_config_steps_differentiably_as_torch(case: configs.Case):
    """torch runs its hook, printing, no-op and state-dict tests with differentiable=True
    too: every optim_db configuration steps non-leaf parameters as torch's does (values and
    state), leaves a parameter without a gradient untouched, prints, fires its step hooks,
    and continues exactly from its state dict."""
    cfg = case.cfg
    gen = torch.Generator().manual_seed(0)
    base = [torch.randn(3, 2, generator=gen, dtype=F64), torch.randn(4, generator=gen, dtype=F64)]
    grads = [[torch.randn(t.shape, generator=gen, dtype=F64) for t in base] for _ in range(3)]
    ours_p = [t.clone().requires_grad_().clone() for t in base]  # non-leaf, as meta-learning
    ref_p = [t.clone().requires_grad_().clone() for t in base]
    idle = base[0].clone().requires_grad_().clone()  # never gets a gradient
    opt = nnopt_cls(cfg.name)([*ours_p, idle], **cfg.kwargs(), flat=case.flat)
    opt.kernels = case.kernels
    ref = cfg.torch_cls(ref_p, **cfg.kwargs())
    assert "differentiable: True" in repr(opt)
    fired = []
    opt.register_step_post_hook(lambda o, args, kwargs: fired.append(o is opt))
    for g in grads:
        for p, q, gi in zip(ours_p, ref_p, g, strict=True):
            p.grad, q.grad = gi.clone(), gi.clone()
        opt.step()
        ref.step()
        for p, q in zip(ours_p, ref_p, strict=True):
            # torch's differentiable Adam computes its bias corrections from the float32 step
            # counter (1e-8 relative); nnopt's from the count as a Python float, as torch's
            # ordinary step does.
            torch.testing.assert_close(p.detach(), q.detach(), rtol=2e-6, atol=1e-8)
    assert fired == [True] * 3
    assert torch.equal(idle.detach(), base[0])
    # The state dict continues exactly (its tensors are detached copies, as torch's).
    copy_p = [p.detach().clone().requires_grad_().clone() for p in ours_p]
    again = nnopt_cls(cfg.name)(copy_p, **cfg.kwargs(), flat=case.flat)
    sd = opt.state_dict()
    sd["param_groups"][0]["params"] = sd["param_groups"][0]["params"][:2]
    again.load_state_dict(sd)
    for p, q in zip((*ours_p, *copy_p), (*grads[0], *grads[0]), strict=True):
        p.grad = q.clone()
    opt.step()
    again.step()
    for p, q in zip(ours_p, copy_p, strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-12, atol=1e-14)
