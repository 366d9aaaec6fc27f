"""Drop-in behaviour: validation, checkpoints, gradients in every state users leave them,
PyTorch's schedulers, GradScaler, sparse and complex parameters, copies and printing.

Where torch.optim defines the behaviour, the test runs the torch optimizer through the same
story and asserts the same numbers.
"""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
from optim_helpers import FLAT_MODES, make_params, max_rel_diff
from torch import nn

import nnopt

FLAT_IDS = ["flat", "per-tensor"]


def tiny_model(seed: int = 0, dtype=torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).to(dtype)


def batch(step: int, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1000 + step)
    return torch.randn(16, 5, generator=gen, dtype=dtype), torch.randn(
        16, 3, generator=gen, dtype=dtype
    )


def loss_of(model: nn.Module, step: int) -> torch.Tensor:
    x, y = batch(step, next(model.parameters()).dtype)
    return ((model(x) - y) ** 2).mean()


def train(model, opt, steps, *, start=0, zero=None):
    """``steps`` ordinary steps; ``zero`` replaces opt.zero_grad() (e.g. model.zero_grad)."""
    for k in range(start, start + steps):
        (zero or opt.zero_grad)()
        loss_of(model, k).backward()
        opt.step()


def assert_models_close(a: nn.Module, b: nn.Module, tol: float = 1e-6) -> None:
    diff = max_rel_diff(list(a.parameters()), list(b.parameters()))
    assert diff < tol, f"max relative difference {diff:.3g}"


def assert_models_equal(a: nn.Module, b: nn.Module) -> None:
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


# --- validation ----------------------------------------------------------------------------

INVALID = [
    (nnopt.SGD, dict(lr=-0.1), "lr"),
    (nnopt.Adam, dict(lr=-1e-3), "lr"),
    (nnopt.Adam, dict(lr=float("nan")), "lr"),
    (nnopt.SGD, dict(lr="0.1"), "lr"),
    (nnopt.Adam, dict(eps=-1e-8), "eps"),
    (nnopt.Adam, dict(eps=0.0), "eps"),
    (nnopt.AdaGrad, dict(eps=-1.0), "eps"),
    (nnopt.RMSProp, dict(eps=-1.0), "eps"),
    (nnopt.AdaGrad, dict(initial_accumulator_value=-1.0), "initial_accumulator_value"),
    (nnopt.SGD, dict(lr=0.1, l1=-0.1), "l1"),
    (nnopt.Adam, dict(l2=-0.1), "l2"),
    (nnopt.RMSProp, dict(weight_decay=-0.1), "weight_decay"),
    (nnopt.AdamW, dict(weight_decay=math.inf), "weight_decay"),
    (nnopt.SGD, dict(lr=0.1, momentum=1.0), "momentum"),
    (nnopt.SGD, dict(lr=0.1, momentum=-0.1), "momentum"),
    (nnopt.RMSProp, dict(momentum=1.5), "momentum"),
    (nnopt.Adam, dict(betas=(1.0, 0.999)), r"betas\[0\]"),
    (nnopt.Adam, dict(betas=(-0.1, 0.999)), r"betas\[0\]"),
    (nnopt.AdamW, dict(betas=(0.9, 1.0)), r"betas\[1\]"),
    (nnopt.Adam, dict(betas=(0.9,)), "betas"),
    (nnopt.RMSProp, dict(rho=1.0), "rho"),
    (nnopt.RMSProp, dict(rho=-0.5), "rho"),
    (nnopt.SGD, dict(lr=0.1, nesterov=True), "nesterov"),
    (nnopt.Adam, dict(amsgrad="yes"), "amsgrad"),
    (nnopt.SGD, dict(lr=0.1, flat="yes"), "flat"),
    (nnopt.Adam, dict(flat=1), "flat"),
]


@pytest.mark.parametrize(
    ("cls", "kwargs", "name"), INVALID, ids=[f"{c.__name__}-{n}" for c, _, n in INVALID]
)
def test_invalid_hyperparameter_names_the_argument(cls, kwargs, name):
    with pytest.raises(ValueError, match=name):
        cls(make_params([(3,)]), **kwargs)


@pytest.mark.parametrize("cls", [nnopt.SGD, nnopt.Adam])
def test_invalid_value_in_a_param_group(cls):
    a, b = make_params([(2,), (3,)])
    with pytest.raises(ValueError, match="lr"):
        cls([dict(params=[a]), dict(params=[b], lr=-1.0)], lr=0.1)
    opt = cls([a], lr=0.1)
    with pytest.raises(ValueError, match="l1"):
        opt.add_param_group(dict(params=[b], l1=-1.0))


def test_empty_params():
    with pytest.raises(ValueError, match="params"):
        nnopt.Adam([])
    with pytest.raises(ValueError, match="params"):
        nnopt.SGD(iter([]), lr=0.1)


def test_param_in_two_groups():
    a, b = make_params([(2,), (3,)])
    with pytest.raises(ValueError, match="parameter group"):
        nnopt.SGD([dict(params=[a, b]), dict(params=[b])], lr=0.1)
    opt = nnopt.Adam([a])
    with pytest.raises(ValueError, match="parameter group"):
        opt.add_param_group(dict(params=[a]))


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_integer_param(dtype):
    with pytest.raises(ValueError, match=r"params\[1\].*dtype"):
        nnopt.Adam([torch.zeros(3, requires_grad=True), torch.zeros(3, dtype=dtype)])


def test_flat_true_rejects_what_it_cannot_pack():
    p = torch.zeros(4, 4).t().requires_grad_(True)  # not contiguous
    with pytest.raises(ValueError, match="flat"):
        nnopt.SGD([p], lr=0.1, flat=True)


# --- checkpoints ---------------------------------------------------------------------------

CHECKPOINT_CASES = [
    pytest.param(nnopt.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, l1=1e-3), id="sgd"),
    pytest.param(nnopt.Adam, dict(lr=1e-2, amsgrad=True, l2=1e-3), id="adam"),
    pytest.param(nnopt.AdamW, dict(lr=1e-2), id="adamw"),
    pytest.param(nnopt.AdaGrad, dict(lr=0.1, initial_accumulator_value=0.1), id="adagrad"),
    pytest.param(nnopt.RMSProp, dict(lr=1e-2, centered=True, momentum=0.5), id="rmsprop"),
]


@pytest.mark.parametrize(("resume_flat"), FLAT_MODES, ids=["to-flat", "to-per-tensor"])
@pytest.mark.parametrize(("train_flat"), FLAT_MODES, ids=FLAT_IDS)
@pytest.mark.parametrize(("cls", "kw"), CHECKPOINT_CASES)
def test_state_dict_round_trip_resumes_exactly(cls, kw, train_flat, resume_flat):
    ref = tiny_model()
    ref_opt = cls(ref.parameters(), flat=train_flat, **kw)
    train(ref, ref_opt, 6)

    model = tiny_model()
    opt = cls(model.parameters(), flat=train_flat, **kw)
    train(model, opt, 3)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)

    resumed = tiny_model(seed=1)  # different weights until the checkpoint is loaded
    resumed.load_state_dict(saved["model"])
    resumed_opt = cls(resumed.parameters(), flat=resume_flat, **kw)
    resumed_opt.load_state_dict(saved["opt"])
    assert resumed_opt.step_count == 3
    train(resumed, resumed_opt, 3, start=3)
    if train_flat is resume_flat:
        assert_models_equal(resumed, ref)
    else:
        assert_models_close(resumed, ref, tol=1e-6)


@pytest.mark.parametrize("flat", FLAT_MODES, ids=FLAT_IDS)
def test_state_dict_has_torch_layout(flat):
    """Same state keys as torch.optim.Adam's, so checkpoints read like torch's."""
    ours, theirs = tiny_model(), tiny_model()
    opt = nnopt.Adam(ours.parameters(), flat=flat)
    topt = torch.optim.Adam(theirs.parameters())
    train(ours, opt, 2)
    train(theirs, topt, 2)
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert sd["state"].keys() == tsd["state"].keys()
    for i, state in tsd["state"].items():
        assert sd["state"][i].keys() == state.keys()
        for key, value in state.items():
            torch.testing.assert_close(sd["state"][i][key], value, rtol=1e-6, atol=1e-7)


# --- gradients in every state ---------------------------------------------------------------

NONE_GRAD_CASES = [
    pytest.param(nnopt.Adam, dict(lr=0.01), torch.optim.Adam, dict(lr=0.01), id="adam"),
    pytest.param(
        nnopt.SGD,
        dict(lr=0.05, momentum=0.9),
        torch.optim.SGD,
        dict(lr=0.05, momentum=0.9),
        id="sgd-momentum",
    ),
    pytest.param(nnopt.AdaGrad, dict(lr=0.1), torch.optim.Adagrad, dict(lr=0.1), id="adagrad"),
]


@pytest.mark.parametrize("kernels", ["auto", "eager"])
@pytest.mark.parametrize("flat", FLAT_MODES, ids=FLAT_IDS)
@pytest.mark.parametrize(("ours", "ours_kw", "ref", "ref_kw"), NONE_GRAD_CASES)
def test_none_grads_mid_training_are_skipped(ours, ours_kw, ref, ref_kw, flat, kernels):
    """Some parameters get no gradient on some steps: torch skips them (no state update, no
    step count), so their Adam bias correction lags; nnopt must do the same."""
    a, b = tiny_model(), tiny_model()
    opt, topt = ours(a.parameters(), flat=flat, **ours_kw), ref(b.parameters(), **ref_kw)
    opt.kernels = kernels
    for k in range(8):
        for model, o in ((a, opt), (b, topt)):
            o.zero_grad()
            loss_of(model, k).backward()
            for i, p in enumerate(model.parameters()):
                if (i + k) % 3 == 0:  # a different subset each step, runs broken up
                    p.grad = None
            o.step()
        assert_models_close(a, b, tol=1e-6)


@pytest.mark.parametrize("flat", FLAT_MODES, ids=FLAT_IDS)
def test_unused_params_with_set_to_none(flat):
    """A branch unused on some steps: with zero_grad(set_to_none=True) its params have no grad
    and are skipped, as in torch."""
    a, b = tiny_model(), tiny_model()
    extra_a, extra_b = nn.Linear(5, 3), nn.Linear(5, 3)
    extra_b.load_state_dict(extra_a.state_dict())
    opt = nnopt.Adam([*a.parameters(), *extra_a.parameters()], lr=0.01, flat=flat)
    topt = torch.optim.Adam([*b.parameters(), *extra_b.parameters()], lr=0.01)
    for k in range(6):
        for model, extra, o in ((a, extra_a, opt), (b, extra_b, topt)):
            o.zero_grad(set_to_none=True)
            loss = loss_of(model, k)
            if k % 2:
                loss = loss + extra(batch(k)[0]).pow(2).mean()
            loss.backward()
            o.step()
        assert_models_close(a, b)
        assert_models_close(extra_a, extra_b)


@pytest.mark.parametrize("flat", FLAT_MODES, ids=FLAT_IDS)
def test_frozen_params_untouched_and_stateless(flat):
    model = tiny_model()
    model[0].weight.requires_grad_(False)
    frozen = model[0].weight.detach().clone()
    opt = nnopt.Adam(model.parameters(), lr=0.1, l1=1e-3, weight_decay=0.1, flat=flat)
    train(model, opt, 3)
    assert torch.equal(model[0].weight, frozen)
    assert not opt.state.get(model[0].weight)
    assert len(opt.state) == 3
    opt.state_dict()  # still serializable


@pytest.mark.parametrize("flat", FLAT_MODES, ids=FLAT_IDS)
def test_model_zero_grad_matches_torch(flat):
    """model.zero_grad() (set_to_none=True) detaches the flat gradient views every step."""
    a, b = tiny_model(), tiny_model()
    opt = nnopt.Adam(a.parameters(), lr=0.01, flat=flat)
    topt = torch.optim.Adam(b.parameters(), lr=0.01)
    train(a, opt, 5, zero=a.zero_grad)
    train(b, topt, 5, zero=b.zero_grad)
    assert_models_close(a, b)
    # and back to the optimizer's own zero_grad: the views are re-attached and reused
    train(a, opt, 3, start=5)
    train(b, topt, 3, start=5)
    assert_models_close(a, b)


@pytest.mark.parametrize("flat", FLAT_MODES, ids=FLAT_IDS)
def test_user_replaces_and_edits_grads(flat):
    """Gradients assigned by the user, scaled in place and clipped (clip_grad_norm_)."""
    a, b = tiny_model(), tiny_model()
    opt = nnopt.SGD(a.parameters(), lr=0.1, momentum=0.9, flat=flat)
    topt = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(5)
    for k in range(6):
        fresh = [torch.randn(p.shape, generator=gen) for p in a.parameters()]
        for model, o in ((a, opt), (b, topt)):
            o.zero_grad()
            loss_of(model, k).backward()
            if k % 2:
                for p, g in zip(model.parameters(), fresh, strict=True):
                    p.grad = g.clone()  # a new tensor, not the flat view
            for p in model.parameters():
                p.grad.mul_(0.5)
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            o.step()
        assert_models_close(a, b)


@pytest.mark.parametrize("flat", FLAT_MODES, ids=FLAT_IDS)
def test_param_data_reassigned(flat):
    a, b = tiny_model(), tiny_model()
    opt = nnopt.Adam(a.parameters(), lr=0.01, flat=flat)
    topt = torch.optim.Adam(b.parameters(), lr=0.01)
    for model, o in ((a, opt), (b, topt)):
        train(model, o, 3)
        for p in model.parameters():
            p.data = p.data * 0.5  # a new tensor: leaves nnopt's flat buffer
        train(model, o, 3, start=3)
    assert_models_close(a, b)
    # the moved parameters are trained in place, not copies
    before = a[0].weight.detach().clone()
    train(a, opt, 1, start=6)
    assert not torch.equal(before, a[0].weight)


@pytest.mark.parametrize("flat", FLAT_MODES, ids=FLAT_IDS)
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_model_to_float64_mid_training(kind, flat):
    """model.to(torch.float64) after 3 steps: the next steps are still torch's.

    torch.optim.SGD steps float64 params with its float32 momentum; torch.optim.Adam cannot
    (dtype mismatch) until its state is cast by a load_state_dict round trip. nnopt's state
    follows the parameter, so no reload is needed.
    """
    a, b = tiny_model(), tiny_model()
    if kind == "sgd":
        opt = nnopt.SGD(a.parameters(), lr=0.05, momentum=0.9, flat=flat)
        topt = torch.optim.SGD(b.parameters(), lr=0.05, momentum=0.9)
    else:
        opt = nnopt.Adam(a.parameters(), lr=0.01, flat=flat)
        topt = torch.optim.Adam(b.parameters(), lr=0.01)
    train(a, opt, 3)
    train(b, topt, 3)
    a.to(torch.float64)
    b.to(torch.float64)
    if kind == "adam":
        topt.load_state_dict(topt.state_dict())
    train(a, opt, 4, start=3)
    train(b, topt, 4, start=3)
    assert all(p.dtype == torch.float64 for p in a.parameters())
    assert_models_close(a, b, tol=1e-6)
    for state in opt.state.values():
        assert all(v.dtype == torch.float64 for k, v in state.items() if k != "step")


# --- copies, printing, groups, closures -------------------------------------------------------


@pytest.mark.parametrize("flat", FLAT_MODES, ids=FLAT_IDS)
def test_deepcopy_and_print(flat):
    model = tiny_model()
    opt = nnopt.Adam(model.parameters(), lr=0.01, flat=flat)
    train(model, opt, 3)
    model2, opt2 = copy.deepcopy((model, opt))
    assert opt2.param_groups[0]["params"][0] is model2[0].weight
    train(model, opt, 3, start=3)
    train(model2, opt2, 3, start=3)
    assert_models_equal(model, model2)
    # independent: stepping the copy leaves the original alone
    before = [p.detach().clone() for p in model.parameters()]
    train(model2, opt2, 2, start=6)
    for p, q in zip(before, model.parameters(), strict=True):
        assert torch.equal(p, q)
    text = repr(opt)
    assert text.startswith("Adam (") and "lr: 0.01" in text and str(opt) == text


@pytest.mark.parametrize("flat", FLAT_MODES, ids=FLAT_IDS)
def test_add_param_group_after_construction(flat):
    a, b = tiny_model(), tiny_model()
    opt = nnopt.SGD(a[0].parameters(), lr=0.1, momentum=0.9, flat=flat)
    topt = torch.optim.SGD(b[0].parameters(), lr=0.1, momentum=0.9)
    train(a, opt, 2)
    train(b, topt, 2)
    opt.add_param_group(dict(params=a[2].parameters(), lr=0.05, nesterov=True, l2=0.01))
    topt.add_param_group(dict(params=b[2].parameters(), lr=0.05, nesterov=True, weight_decay=0.01))
    assert opt.param_groups[1]["momentum"] == 0.9  # defaults fill the new group
    train(a, opt, 4, start=2)
    train(b, topt, 4, start=2)
    assert_models_close(a, b)


@pytest.mark.parametrize("flat", FLAT_MODES, ids=FLAT_IDS)
def test_step_with_closure_returns_loss(flat):
    a, b = tiny_model(), tiny_model()
    opt = nnopt.Adam(a.parameters(), lr=0.01, flat=flat)
    topt = torch.optim.Adam(b.parameters(), lr=0.01)
    for k in range(3):
        for model, o in ((a, opt), (b, topt)):

            def closure(model=model, o=o, k=k):
                o.zero_grad()
                loss = loss_of(model, k)
                loss.backward()
                return loss

            expected = loss_of(model, k).item()
            assert o.step(closure).item() == pytest.approx(expected)
    assert_models_close(a, b)
    assert opt.step() is None


# --- PyTorch's schedulers and AMP's GradScaler ----------------------------------------------

SCHEDULERS = [
    pytest.param(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5), id="step"),
    pytest.param(lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.8), id="exp"),
]


@pytest.mark.parametrize("flat", FLAT_MODES, ids=FLAT_IDS)
@pytest.mark.parametrize("make_scheduler", SCHEDULERS)
def test_torch_lr_schedulers(make_scheduler, flat):
    a, b = tiny_model(), tiny_model()
    opt = nnopt.SGD(a.parameters(), lr=0.1, momentum=0.9, flat=flat)
    topt = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9)
    sched, tsched = make_scheduler(opt), make_scheduler(topt)
    for epoch in range(6):
        train(a, opt, 1, start=epoch)
        train(b, topt, 1, start=epoch)
        sched.step()
        tsched.step()
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-12)
        assert_models_close(a, b)
    assert opt.param_groups[0]["lr"] < 0.1


@pytest.mark.parametrize("flat", FLAT_MODES, ids=FLAT_IDS)
def test_grad_scaler_skips_inf_steps(flat):
    scaler_cls = getattr(getattr(torch, "amp", None), "GradScaler", None)
    if scaler_cls is None:
        pytest.skip("torch.amp.GradScaler is not available in this torch version")
    try:
        scalers = [scaler_cls("cpu", init_scale=2.0**10) for _ in range(2)]
    except (RuntimeError, TypeError) as err:  # pragma: no cover - depends on the torch build
        pytest.skip(f"GradScaler does not run on CPU here: {err}")
    a, b = tiny_model(), tiny_model()
    opt = nnopt.Adam(a.parameters(), lr=0.01, flat=flat)
    topt = torch.optim.Adam(b.parameters(), lr=0.01)
    for k in range(5):
        before = [p.detach().clone() for p in a.parameters()]
        for model, o, scaler in ((a, opt, scalers[0]), (b, topt, scalers[1])):
            o.zero_grad()
            scaler.scale(loss_of(model, k)).backward()
            if k == 2:
                next(model.parameters()).grad[0, 0] = math.inf
            scaler.step(o)
            scaler.update()
        assert_models_close(a, b)
        if k == 2:  # skipped: nothing moved, no state advanced, the scale halved
            for p, q in zip(before, a.parameters(), strict=True):
                assert torch.equal(p, q)
            assert scalers[0].get_scale() == scalers[1].get_scale() == 2.0**9
    assert opt.state[a[0].weight]["step"].item() == 4


# --- sparse and complex parameters ------------------------------------------------------------


@pytest.mark.parametrize("flat", FLAT_MODES, ids=FLAT_IDS)
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sparse_embedding_grads_sgd(momentum, flat):
    torch.manual_seed(0)
    a = nn.Embedding(10, 4, sparse=True)
    b = copy.deepcopy(a)
    opt = nnopt.SGD(a.parameters(), lr=0.1, momentum=momentum, flat=flat)
    topt = torch.optim.SGD(b.parameters(), lr=0.1, momentum=momentum)
    gen = torch.Generator().manual_seed(3)
    for _ in range(5):
        idx = torch.randint(0, 10, (6,), generator=gen)
        for emb, o in ((a, opt), (b, topt)):
            o.zero_grad()
            emb(idx).pow(2).sum().backward()
            o.step()
        torch.testing.assert_close(a.weight, b.weight, rtol=1e-6, atol=1e-7)


COMPLEX_CASES = [
    pytest.param(nnopt.Adam, dict(lr=0.01), torch.optim.Adam, dict(lr=0.01), id="adam"),
    pytest.param(
        nnopt.Adam,
        dict(lr=0.01, amsgrad=True, weight_decay=0.1),
        torch.optim.AdamW,
        dict(lr=0.01, amsgrad=True, weight_decay=0.1),
        id="adamw-amsgrad",
    ),
    pytest.param(
        nnopt.SGD,
        dict(lr=0.05, momentum=0.9, l2=0.01),
        torch.optim.SGD,
        dict(lr=0.05, momentum=0.9, weight_decay=0.01),
        id="sgd",
    ),
    pytest.param(
        nnopt.AdaGrad,
        dict(lr=0.1, initial_accumulator_value=0.1),
        torch.optim.Adagrad,
        dict(lr=0.1, initial_accumulator_value=0.1),
        id="adagrad",
    ),
    pytest.param(
        nnopt.RMSProp,
        dict(lr=0.01, eps_inside_sqrt=False, centered=True, momentum=0.5),
        torch.optim.RMSprop,
        dict(lr=0.01, alpha=0.9, centered=True, momentum=0.5),
        id="rmsprop",
    ),
]


@pytest.mark.parametrize("flat", FLAT_MODES, ids=FLAT_IDS)
@pytest.mark.parametrize(("ours", "ours_kw", "ref", "ref_kw"), COMPLEX_CASES)
def test_complex_params_match_torch(ours, ours_kw, ref, ref_kw, flat):
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(3, 4, generator=gen)
    z = torch.complex(real, torch.randn(3, 4, generator=gen)).requires_grad_(True)
    w = torch.randn(5, generator=gen).requires_grad_(True)  # a real param alongside
    z2, w2 = z.detach().clone().requires_grad_(True), w.detach().clone().requires_grad_(True)
    opt, topt = ours([z, w], flat=flat, **ours_kw), ref([z2, w2], **ref_kw)
    for _ in range(10):
        gz = torch.complex(torch.randn(3, 4, generator=gen), torch.randn(3, 4, generator=gen))
        gw = torch.randn(5, generator=gen)
        for params, o in (((z, w), opt), ((z2, w2), topt)):
            o.zero_grad()
            params[0].grad, params[1].grad = gz.clone(), gw.clone()
            o.step()
        assert max_rel_diff([z, w], [z2, w2]) < 1e-6


def test_complex_params_rejected_by_flat_true():
    z = torch.zeros(3, dtype=torch.complex64, requires_grad=True)
    with pytest.raises(ValueError, match="flat"):
        nnopt.Adam([z], flat=True)


# --- parameters flat buffers cannot hold --------------------------------------------------------

LAYOUT_CASES = [
    pytest.param(nnopt.Adam, dict(lr=0.1), torch.optim.Adam, dict(lr=0.1), id="adam"),
    pytest.param(
        nnopt.SGD,
        dict(lr=0.1, momentum=0.9),
        torch.optim.SGD,
        dict(lr=0.1, momentum=0.9),
        id="sgd",
    ),
    pytest.param(nnopt.AdaGrad, dict(lr=0.1), torch.optim.Adagrad, dict(lr=0.1), id="adagrad"),
]


@pytest.mark.parametrize("kernels", ["auto", "eager"])
@pytest.mark.parametrize("flat", FLAT_MODES, ids=FLAT_IDS)
@pytest.mark.parametrize(("ours", "ours_kw", "ref", "ref_kw"), LAYOUT_CASES)
def test_non_contiguous_param_with_assigned_grad(ours, ours_kw, ref, ref_kw, flat, kernels):
    """A transposed parameter (stepped tensor by tensor) whose gradient the user assigns in
    ordinary contiguous layout: elements must be paired by index, not by memory position."""
    gen = torch.Generator().manual_seed(0)
    p = torch.randn(4, 3, generator=gen).t().requires_grad_(True)
    w = torch.randn(5, generator=gen).requires_grad_(True)
    q, v = p.detach().clone().requires_grad_(True), w.detach().clone().requires_grad_(True)
    assert not p.is_contiguous() and not q.is_contiguous()
    opt, topt = ours([p, w], flat=flat, **ours_kw), ref([q, v], **ref_kw)
    opt.kernels = kernels
    for _ in range(4):
        gp, gw = torch.randn(3, 4, generator=gen), torch.randn(5, generator=gen)
        for (a, b), o in (((p, w), opt), ((q, v), topt)):
            a.grad, b.grad = gp.clone(), gw.clone()
            o.step()
        assert max_rel_diff([p, w], [q, v]) < 1e-6


@pytest.mark.parametrize("flat", FLAT_MODES, ids=FLAT_IDS)
def test_mixed_dtypes_in_one_group(flat):
    """float32 and float64 parameters in one group: one flat bucket per dtype."""
    gen = torch.Generator().manual_seed(0)
    a = [
        torch.randn(4, generator=gen).requires_grad_(True),
        torch.randn(3, generator=gen, dtype=torch.float64).requires_grad_(True),
        torch.randn(5, generator=gen).requires_grad_(True),
    ]
    b = [p.detach().clone().requires_grad_(True) for p in a]
    opt, topt = nnopt.Adam(a, lr=0.1, flat=flat), torch.optim.Adam(b, lr=0.1)
    assert len(opt.flat_buffers()) == (2 if flat is None else 0)
    for _ in range(5):
        grads = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in a]
        for params, o in ((a, opt), (b, topt)):
            for p, g in zip(params, grads, strict=True):
                p.grad = g.clone()
            o.step()
        assert max_rel_diff(a, b) < 1e-6
    assert a[1].dtype == torch.float64


@pytest.mark.parametrize(("resume_flat"), FLAT_MODES, ids=["to-flat", "to-per-tensor"])
@pytest.mark.parametrize(("train_flat"), FLAT_MODES, ids=FLAT_IDS)
def test_checkpoint_with_uneven_step_counts(train_flat, resume_flat):
    """Parameters skipped on some steps have their own Adam step counts; a checkpoint keeps
    them, so the resumed run is identical to the uninterrupted one."""

    def story(save_at=None):
        model = tiny_model()
        opt = nnopt.Adam(model.parameters(), lr=0.01, flat=train_flat)
        for k in range(8):
            if k == save_at:
                buf = io.BytesIO()
                torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
                buf.seek(0)
                saved = torch.load(buf, weights_only=True)
                model = tiny_model(seed=1)
                model.load_state_dict(saved["model"])
                opt = nnopt.Adam(model.parameters(), lr=0.01, flat=resume_flat)
                opt.load_state_dict(saved["opt"])
            opt.zero_grad()
            loss_of(model, k).backward()
            for i, p in enumerate(model.parameters()):
                if (i + k) % 3 == 0:
                    p.grad = None
            opt.step()
        return model, opt

    ref, ref_opt = story()
    resumed, opt = story(save_at=4)
    steps = [s["step"].item() for s in opt.state.values()]
    assert steps == [s["step"].item() for s in ref_opt.state.values()] and len(set(steps)) > 1
    if train_flat is resume_flat:
        assert_models_equal(resumed, ref)
    else:
        assert_models_close(resumed, ref)


@pytest.mark.parametrize("flat", [None, False])
def test_a_torch_optim_state_dict_loads_and_continues_identically(flat):
    g = torch.Generator().manual_seed(3)
    start = [torch.randn(4, 3, generator=g), torch.randn(5, generator=g)]
    grads = [[torch.randn(s.shape, generator=g) for s in start] for _ in range(6)]
    theirs = [s.clone().requires_grad_(True) for s in start]
    ref = torch.optim.Adam(theirs, lr=1e-2)
    for step_grads in grads[:3]:
        for p, gr in zip(theirs, step_grads, strict=True):
            p.grad = gr.clone()
        ref.step()
    ours = [p.detach().clone().requires_grad_(True) for p in theirs]
    opt = nnopt.Adam(ours, lr=1e-2, flat=flat)
    opt.load_state_dict(ref.state_dict())
    assert opt.param_groups[0]["l2"] == 0.0  # not in torch's dict: kept from the constructor
    for step_grads in grads[3:]:
        for p, q, gr in zip(theirs, ours, step_grads, strict=True):
            p.grad, q.grad = gr.clone(), gr.clone()
        ref.step()
        opt.step()
    for p, q in zip(theirs, ours, strict=True):
        torch.testing.assert_close(q, p, rtol=1e-6, atol=1e-7)
