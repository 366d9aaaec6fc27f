"""state_dict / load_state_dict: round trips between flat and per-tensor storage resume
exactly, the layout is torch's, and torch.optim's own state dicts load."""

from __future__ import annotations

import io

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


@pytest.mark.parametrize("flat", [True, False])
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
