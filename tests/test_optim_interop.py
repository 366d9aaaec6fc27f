"""Drop-in for torch.optim: deepcopy and printing, add_param_group, closures, PyTorch's LR
schedulers and AMP's GradScaler."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from model_helpers import (
    FLAT_IDS,
    assert_models_close,
    assert_models_equal,
    loss_of,
    tiny_model,
    train,
)
from optim_helpers import FLAT_MODES

import nnopt

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
