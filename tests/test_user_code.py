"""An exception inside the user's own model is the user's to fix (issue 20, item 8): the
first-batch check makes it one line naming model.factory, the batch's shapes and torch's
message, exit 2, not "internal error: this is a bug in nnopt" (exit 70)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import nnopt
from nnopt.cli import main
from nnopt.recipe import RecipeError
from nnopt.training import train

RECIPE = """
name = "mine"
[data]
name = "digits"
[model]
factory = "project.py:model"
[optimizer]
name = "adam"
lr = 0.01
[train]
steps = 6
batch_size = 32
eval_every = 3
"""
PROJECT = """
from torch import nn

def model(input_dim, output_dim):
    return nn.Sequential(nn.Linear(input_dim - {missing}, 16), nn.Dropout(0.5), nn.BatchNorm1d(16),
                         nn.Linear(16, output_dim))
"""


def _project(tmp_path: Path, missing: int) -> Path:
    (tmp_path / "project.py").write_text(PROJECT.format(missing=missing))
    (tmp_path / "mine.toml").write_text(RECIPE)
    return tmp_path


def _nnopt(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(cwd), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run([sys.executable, "-m", "nnopt", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


EXPECTED = (
    "error: model.factory: the model project.py:model built fails on the first batch (x of "
    "shape (32, 64) float32, y of shape (32,) int64): RuntimeError: mat1 and mat2 shapes "
    "cannot be multiplied (32x64 and 49x16)"
)


def test_a_shape_error_in_the_users_model_is_one_line_exit_2(tmp_path):
    done = _nnopt(_project(tmp_path, missing=15), "train", "mine.toml")
    assert done.returncode == 2, done.stderr  # was 70, "internal error: this is a bug in nnopt"
    assert done.stderr.splitlines() == [f"nnopt train: {EXPECTED}"]


def test_lr_find_says_the_same_and_debug_keeps_the_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(_project(tmp_path, missing=15))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["lr-find", "mine.toml"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"nnopt lr-find: {EXPECTED}"]
    with pytest.raises(RecipeError) as info:  # --debug: raised, with torch's error as its cause
        main(["train", "mine.toml", "--debug"])
    assert isinstance(info.value.__cause__, RuntimeError)
    assert "mat1 and mat2" in str(info.value.__cause__)


def test_a_model_passed_from_python_is_named_as_such():
    bad = nn.Linear(10, 10)
    with pytest.raises(RecipeError, match=r"^model: the model passed from Python fails on the "
                       r"first batch \(x of shape \(100, 64\) float32"):  # fmt: skip
        nnopt.train({"data": {"name": "digits"}, "optimizer": {"name": "sgd", "lr": 0.1}},
                    model=bad)  # fmt: skip


def test_the_check_leaves_no_trace(tmp_path, monkeypatch):
    # Dropout draws from the RNG and BatchNorm updates its statistics: the checked run is
    # the run itself, number for number, as with the check switched off.
    from nnopt.training import loop

    monkeypatch.syspath_prepend(str(_project(tmp_path, missing=0)))
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    checked = train(RECIPE).model.state_dict()
    monkeypatch.setattr(loop, "check_first_batch", lambda *args: None)
    unchecked = train(RECIPE).model.state_dict()
    for key, value in checked.items():
        torch.testing.assert_close(value, unchecked[key], rtol=0, atol=0)
