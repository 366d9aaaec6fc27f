"""A checkpoint from elsewhere runs no code (issue 27, section 3).

nnopt writes only what ``torch.load(weights_only=True)`` reads.
"""

from __future__ import annotations

import io
import os
import pickle
import random
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import digits_recipe

from nnopt.recipe import Recipe
from nnopt.rng import plain_rng_state, rng_state, set_rng_state
from nnopt.training import train
from nnopt.training.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_NAME


def tiny(*overrides: str) -> Recipe:
    """test_train's digits run (dropout, warmup-cosine, plateau), 30 steps, cut at 20."""
    return digits_recipe("train.steps=30", "train.eval_every=10", "train.checkpoint_every=10",
                         *overrides)  # fmt: skip


class Planted:
    """What a hostile file carries: unpickling it calls os.system, which creates ``sentinel``."""

    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.sentinel))}",))


def plant(path: Path, how: str) -> Path:
    """Replace a run's checkpoint by one that would create a file as it loads."""
    sentinel = path.parent / "SENTINEL"
    payload = {"model": {}, "optimizer": {}, "rng": Planted(sentinel)}
    if how == "torch.save":
        torch.save(payload, path)
    elif how == "legacy":  # torch's format before 1.6: pickles in a row, no zip
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:  # a bare pickle, protocol 4 (STACK_GLOBAL, memoized names)
        path.write_bytes(pickle.dumps(payload, protocol=4))
    return sentinel


def stopped_run(run: Path, *overrides: str) -> Recipe:
    recipe = tiny(*overrides)
    train(recipe, run, stop_after=20)
    return recipe


# --- what nnopt writes ---------------------------------------------------------------------


def draws() -> list:
    # randn first: it uses the Gaussian NumPy cached (has_gauss), which the state must carry.
    return [*np.random.randn(3), *np.random.rand(2), random.random(), *torch.rand(2).tolist()]


def test_the_rng_state_loads_with_weights_only_and_restores_every_stream():
    np.random.seed(7)
    random.seed(7)
    np.random.randn()  # leaves a cached Gaussian
    state = rng_state()
    expected = draws()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    set_rng_state(torch.load(buffer, weights_only=True))
    assert draws() == expected


@pytest.mark.parametrize("legacy", [True, False], ids=["numpy-tuple", "numpy-dict"])
def test_an_older_numpy_state_converts_bit_for_bit(legacy):
    np.random.seed(3)
    np.random.randn()
    old = np.random.get_state(legacy=legacy)  # an ndarray inside, as before format 4
    expected = draws()[:5]
    np.random.seed(0)
    set_rng_state(plain_rng_state({**rng_state(), "numpy": old}))
    assert draws()[:5] == expected


@pytest.mark.parametrize(
    "overrides",
    [
        (),
        ("optimizer.name=sgd", "schedule.kind=step", "schedule.step_size=5", "schedule.gamma=0.5"),
        ("optimizer.name=momentum", "schedule.kind=one_cycle", "plateau=none"),
        ("optimizer.name=rmsprop", "schedule.kind=exponential", "schedule.gamma=0.9"),
        ("optimizer.name=adagrad", "schedule.kind=cosine", "optimizer.flat=true"),
        ("optimizer.name=adamw", "schedule.kind=constant", "regularization.l1=1e-4"),
    ],
    ids=[
        "adam-warmup-plateau",
        "sgd-step",
        "momentum-one-cycle",
        "rmsprop-exp",
        "adagrad-flat",
        "adamw-l1",
    ],  # fmt: skip
)
def test_every_checkpoint_nnopt_writes_loads_with_weights_only(tmp_path, overrides):
    train(tiny("train.steps=12", *overrides), tmp_path)
    payload = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert payload["format"] == CHECKPOINT_FORMAT == 4
    assert payload["rng"]["numpy"]["state"]["key"].dtype == torch.int64
