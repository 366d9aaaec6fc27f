"""nnopt.data.load: the one entry of a run's data; every source split and standardized alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnopt.data import load, load_dataset
from nnopt.errors import RecipeError
from nnopt.recipe import Recipe
from nnopt.usercode import PASSED


def spec(**data: object) -> Recipe:
    return Recipe.from_dict({"data": data, "optimizer": {"name": "sgd", "lr": 0.1}})


def test_a_built_in_set_loads_as_load_dataset_gives_it():
    r = spec(name="regression", val_fraction=0.25, options={"n": 200, "dim": 3})
    data = load(r.data, seed=4)
    same = load_dataset("regression", seed=4, val_fraction=0.25, n=200, dim=3)
    assert torch.equal(data.x_train, same.x_train) and torch.equal(data.y_test, same.y_test)
    assert (len(data.x_train), len(data.x_test)) == (150, 50)


def test_passed_arrays_are_split_and_standardized_like_a_built_in_set():
    rng = np.random.default_rng(0)
    x, y = rng.normal(3.0, 2.0, (40, 2)), np.tile([0, 1], 20)
    data = load(spec(factory=PASSED, val_fraction=0.25).data, seed=1, passed=(x, y))
    assert (data.name, len(data.x_train), len(data.x_test)) == ("data", 30, 10)
    assert data.x_train.mean(0).abs().max().item() < 1e-6  # standardized on the train split
    assert data.x_train.std(0, unbiased=False).sub(1).abs().max().item() < 1e-5
    raw = load(spec(factory=PASSED, standardize=False).data, seed=1, passed=(x, y))
    assert raw.mean is None and raw.task == "classification" and raw.num_classes == 2


def test_data_passed_before_is_asked_for_again():
    with pytest.raises(RecipeError, match="passed from Python .* pass it again to resume"):
        load(spec(factory=PASSED).data, seed=0)
