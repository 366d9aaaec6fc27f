"""Every optimizer row's state across checkpoints: a saved and reloaded run continues exactly
as the uninterrupted one, in either layout; rows with a torch twin exchange state dicts with
it both ways. Driven only by ``optim_cases.CASES``."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from model_helpers import assert_models_close, assert_models_equal, tiny_model, train
from optim_case import FLATS, build
from optim_cases import ALL_SETS, CASES, set_id


def saved(model, opt) -> dict:
    """What a checkpoint holds, through torch.save and a weights-only load."""
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("pair", ALL_SETS, ids=set_id)
def test_checkpoint_resumes_exactly(pair):
    """3 steps, save, load into a fresh optimizer (either layout), 3 more: bitwise the
    uninterrupted 6 steps in the same layout, within float32 rounding across layouts."""
    case, index = pair
    sets = [case.option_sets[index]]
    for train_flat in FLATS:
        ref = tiny_model()
        train(ref, build(case, case.trainable(ref.parameters()), sets, flat=train_flat), 6)
        model = tiny_model()
        opt = build(case, case.trainable(model.parameters()), sets, flat=train_flat)
        train(model, opt, 3)
        checkpoint = saved(model, opt)
        for resume_flat in FLATS:
            resumed = tiny_model(seed=1)  # other weights until the checkpoint loads
            resumed.load_state_dict(checkpoint["model"])
            resumed_opt = build(case, case.trainable(resumed.parameters()), sets, flat=resume_flat)
            resumed_opt.load_state_dict(checkpoint["opt"])
            assert resumed_opt.step_count == 3
            train(resumed, resumed_opt, 3, start=3)
            if train_flat is resume_flat:
                assert_models_equal(resumed, ref)
            else:
                assert_models_close(resumed, ref, tol=case.tol32)


TWIN_SETS = [(c, i) for c in CASES.values() for i in c.twin_sets()]


@pytest.mark.parametrize("pair", TWIN_SETS, ids=set_id)
def test_state_dict_crosses_to_the_twin_and_back(pair):
    """nnopt (either layout) trains 3 steps, torch's twin built with its defaults loads the
    state dict and continues as nnopt does; and the other way round, nnopt built with the
    row's defaults takes torch's options and state from the dict. The state dicts have
    torch's layout (same keys, same values)."""
    case, index = pair
    sets = [case.option_sets[index]]
    for flat in FLATS:
        ours = tiny_model()
        opt = build(case, case.trainable(ours.parameters()), sets, flat=flat)
        train(ours, opt, 3)
        theirs = copy.deepcopy(ours)
        twin = case.twin(case.trainable(theirs.parameters()))
        twin.load_state_dict(copy.deepcopy(opt.state_dict()))
        train(ours, opt, 3, start=3)
        train(theirs, twin, 3, start=3)
        assert_models_close(theirs, ours, tol=case.tol32)

    theirs = tiny_model()
    twin = build(case, case.trainable(theirs.parameters()), sets, twin=True)
    train(theirs, twin, 3)
    ours = copy.deepcopy(theirs)
    opt = case.table_row.build(
        case.trainable(ours.parameters()), lr=1.0
    )  # other options than torch's
    opt.load_state_dict(copy.deepcopy(twin.state_dict()))
    train(theirs, twin, 3, start=3)
    train(ours, opt, 3, start=3)
    assert_models_close(ours, theirs, tol=case.tol32)
    ours_state, twin_state = opt.state_dict()["state"], twin.state_dict()["state"]
    assert ours_state.keys() == twin_state.keys()
    for i, state in twin_state.items():
        assert ours_state[i].keys() == state.keys(), i
        for key, value in state.items():
            torch.testing.assert_close(ours_state[i][key], value, rtol=case.tol32, atol=1e-7)
