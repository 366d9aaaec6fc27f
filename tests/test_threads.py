"""A run's CPU threads: chosen from the model's size unless the recipe says, and recorded."""

from __future__ import annotations

import pytest
import torch
from recipe_helpers import make

from nnopt.errors import RecipeError
from nnopt.training import train
from nnopt.training.threads import SMALL_MODEL, choose_threads, usable_cores


def test_small_models_get_one_thread_and_large_ones_the_cores(monkeypatch):
    monkeypatch.setattr("nnopt.training.threads.usable_cores", lambda: 8)
    torch.set_num_threads(4)
    assert choose_threads(None, SMALL_MODEL - 1) == 1
    assert choose_threads(None, SMALL_MODEL) == 4  # never above what the process was given
    torch.set_num_threads(1)  # e.g. compare --jobs 2 on 2 cores
    assert choose_threads(None, 10 * SMALL_MODEL) == 1
    assert choose_threads(3, 10) == 3  # the recipe's number wins
    assert usable_cores() >= 1


def test_a_run_sets_and_records_its_threads(tmp_path):
    torch.set_num_threads(2)
    auto = train(make(train={"steps": 2, "eval_every": 2}), tmp_path / "auto")
    assert auto.summary["threads"] == 1 and torch.get_num_threads() == 1
    asked = train(make(train={"steps": 2, "eval_every": 2, "threads": 2}), tmp_path / "two")
    assert asked.summary["threads"] == 2 and torch.get_num_threads() == 2


def test_threads_must_be_a_positive_integer():
    with pytest.raises(RecipeError, match="train.threads") as caught:
        make(train={"threads": 0})
    assert len(str(caught.value).splitlines()) == 1
