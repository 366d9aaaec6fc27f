"""A checkpoint from elsewhere runs no code (issue 27, section 3).

nnopt writes only what ``torch.load(weights_only=True)`` reads and reads every checkpoint so;
a planted pickle is refused in one line, unexecuted; a checkpoint of an older nnopt (format 3,
NumPy arrays inside) resumes only with ``--trust-checkpoint``, which converts it once.
"""

from __future__ import annotations

import io
import os
import pickle
import random
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import digits_recipe

from nnopt.cli import main
from nnopt.errors import CheckpointError
from nnopt.recipe import Recipe
from nnopt.rng import plain_rng_state, rng_state, set_rng_state
from nnopt.training import train
from nnopt.training.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_NAME, load_checkpoint


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


# --- a file from elsewhere -----------------------------------------------------------------


@pytest.mark.parametrize("how", ["torch.save", "legacy", "bare-pickle"])
def test_a_planted_pickle_is_refused_by_the_python_api_and_not_run(tmp_path, how):
    recipe = stopped_run(tmp_path / "run")
    sentinel = plant(tmp_path / "run" / CHECKPOINT_NAME, how)
    with pytest.raises(CheckpointError) as caught:
        train(recipe, tmp_path / "run", resume=True)
    assert not sentinel.exists()
    message = str(caught.value)
    assert message == (
        f"{tmp_path / 'run' / CHECKPOINT_NAME} is not a plain nnopt checkpoint: it holds a "
        "pickled os.system call; nnopt loads only tensors and plain values, so it was not executed"
    )
    with pytest.raises(CheckpointError, match="os.system"):
        load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)
    assert not sentinel.exists()


def test_a_planted_pickle_is_refused_by_nnopt_train_resume_in_one_line(tmp_path):
    stopped_run(tmp_path / "run")
    sentinel = plant(tmp_path / "run" / CHECKPOINT_NAME, "torch.save")
    done = subprocess.run(
        [sys.executable, "-m", "nnopt", "train", "--resume", "run", "--quiet"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert not sentinel.exists()
    assert done.stderr.splitlines() == [
        "nnopt train: error: run/checkpoint.pt is not a plain nnopt checkpoint: it holds a "
        "pickled os.system call; nnopt loads only tensors and plain values, so it was not executed"
    ]


# --- a checkpoint of an older nnopt --------------------------------------------------------


def as_format_3(path: Path) -> torch.Tensor:
    """Rewrite a checkpoint as nnopt wrote it before format 4 (NumPy's key an ndarray); the
    key as format 4 holds it."""
    payload = torch.load(path, weights_only=True)
    numpy = payload["rng"]["numpy"]
    key = numpy["state"]["key"]
    old_numpy = {**numpy, "state": {**numpy["state"], "key": key.numpy().astype(np.uint32)}}
    torch.save({**payload, "format": 3, "rng": {**payload["rng"], "numpy": old_numpy}}, path)
    return key


def test_an_old_checkpoint_resumes_only_when_trusted_and_then_exactly(tmp_path, capsys):
    full = train(tiny(), tmp_path / "full")
    stopped_run(tmp_path / "old")
    path = tmp_path / "old" / CHECKPOINT_NAME
    as_format_3(path)
    old_bytes = path.read_bytes()

    assert main(["train", "--resume", str(tmp_path / "old"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"nnopt train: error: {path} was written by an older nnopt (checkpoint format 3 or "
        "earlier: it holds pickled NumPy arrays, and nnopt now loads only tensors and plain "
        f"values); if you wrote it, convert it once: nnopt train --resume {tmp_path / 'old'} "
        "--trust-checkpoint"
    ]
    assert path.read_bytes() == old_bytes  # refused: left as it was

    argv = ["train", "--resume", str(tmp_path / "old"), "--quiet", "--trust-checkpoint"]
    assert main(argv) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"nnopt: loading {path} with pickle because --trust-checkpoint was given: only do this "
        "for files you wrote (it is rewritten as a plain checkpoint, which needs no trust)"
    ]
    # Resumed bitwise where the uninterrupted run ended; the file is plain from now on.
    resumed = torch.load(path, weights_only=True)
    assert resumed["format"] == CHECKPOINT_FORMAT and resumed["run"]["step"] == 30
    for name, value in full.model.state_dict().items():
        assert torch.equal(resumed["model"][name], value), name
    full_rows = [{k: v for k, v in r.items() if k != "time"} for r in full.history]
    assert [{k: v for k, v in r.items() if k != "time"} for r in resumed["run"]["history"]] == (
        full_rows
    )


def test_the_python_api_converts_an_old_checkpoint_only_with_trust_checkpoint(tmp_path, capsys):
    full = train(tiny(), tmp_path / "full")
    recipe = stopped_run(tmp_path / "old")
    path = tmp_path / "old" / CHECKPOINT_NAME
    key = as_format_3(path)
    with pytest.raises(CheckpointError, match="was written by an older nnopt"):
        train(recipe, tmp_path / "old", resume=True)
    # Restored and saved again at once (no step taken): what the conversion made of the file.
    train(recipe, tmp_path / "old", resume=True, trust_checkpoint=True, stop_after=20)
    assert "with pickle because --trust-checkpoint" in capsys.readouterr().err
    converted = torch.load(path, weights_only=True)
    assert converted["format"] == CHECKPOINT_FORMAT and converted["run"]["step"] == 20
    # NumPy's stream survives the trip through an ndarray and back, bit for bit.
    assert torch.equal(converted["rng"]["numpy"]["state"]["key"], key)
    resumed = train(recipe, tmp_path / "old", resume=True)  # plain now: no trust needed
    assert capsys.readouterr().err == ""
    for a, b in zip(full.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_trust_checkpoint_without_resume_is_one_line(tmp_path, capsys):
    tiny().save(tmp_path / "tiny.toml")
    argv = ["train", str(tmp_path / "tiny.toml"), "--trust-checkpoint", "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["nnopt train: error: --trust-checkpoint applies to a resume: --resume RUN_DIR"]


def test_a_trusted_file_that_cannot_become_plain_is_left_as_it_was(tmp_path, capsys):
    stopped_run(tmp_path / "old")
    path = tmp_path / "old" / CHECKPOINT_NAME
    payload = torch.load(path, weights_only=True)
    payload["run"]["history"][0]["val_loss"] = np.float64(1.0)  # not a plain value
    torch.save({**payload, "format": 3}, path)
    before = path.read_bytes()
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path, trust=True)
    assert str(caught.value).startswith(f"{path} cannot be converted to a plain checkpoint: ")
    assert str(caught.value).endswith("; it was left as it was")
    assert path.read_bytes() == before
