"""Gradients in every state users leave them: None mid-training, unused or frozen
parameters, model.zero_grad(), replaced or edited .grad, reassigned p.data, model.to()."""

from __future__ import annotations

import pytest
import torch
from model_helpers import (
    FLAT_IDS,
    assert_models_close,
    batch,
    loss_of,
    tiny_model,
    train,
    twin_cases,
)
from optim_helpers import FLAT_MODES
from torch import nn

import nnopt

# --- gradients in every state ---------------------------------------------------------------

NONE_GRAD_CASES = twin_cases()


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
