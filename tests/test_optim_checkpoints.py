"""state_dict / load_state_dict with per-tensor step counts that differ.

Every row's round trip (either layout, bitwise resume) and its exchange of state dicts with
its torch twin are ``test_optim_cases_state.py`` (driven by ``optim_cases.py``).
"""

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
)
from optim_helpers import FLAT_MODES

import nnopt


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
