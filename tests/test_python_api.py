"""``nnopt.compare`` and ``nnopt.lr_find`` from Python, on your own model and data objects:
the numbers equal those of ``nnopt.train``, the objects are left as they were, the results
draw their plots."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import nnopt
from nnopt.errors import UserError


def data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 240)
    x = torch.tensor(rng.normal(size=(240, 6)) + 3.0 * np.eye(3, 6)[y], dtype=torch.float32)
    return x, torch.tensor(y)


def build() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.ReLU(), torch.nn.Linear(12, 3))


RECIPE = {
    "name": "mine",
    "optimizer": {"name": "sgd", "lr": 0.05},
    "train": {"steps": 30, "batch_size": 24, "eval_every": 10},
}


@pytest.mark.parametrize("jobs", [1, 2])
def test_compare_takes_a_model_function_and_data_and_matches_train(tmp_path, jobs):
    result = nnopt.compare(RECIPE, seeds=2, vary=["optimizer.name=sgd,adam"], model=build,
                           data=data(), out=tmp_path / "cmp", jobs=jobs)  # fmt: skip
    assert [s.variant for s in result.stats] == ["sgd", "adam"]
    assert result.metric == "val_accuracy" and result.label == "validation accuracy"
    assert result.best in ("sgd", "adam")
    assert "| adam |" in result.table() and "validation accuracy" in result._repr_markdown_()
    paths = [p.path for p in result.plot(tmp_path / "figs")]
    assert paths and all(p.is_file() and p.parent == tmp_path / "figs" for p in paths)
    assert result.files["report.html"].is_file()
    # Each run is what nnopt.train gives for its seed, the model built under that seed.
    record = next(r for r in result.records if r.variant == "adam" and r.seed == 1)
    torch.manual_seed(1)
    alone = nnopt.train({**RECIPE, "seed": 1, "optimizer": {"name": "adam", "lr": 0.05}},
                        model=build(), data=data())  # fmt: skip
    assert record.history[-1]["val_loss"] == alone.history[-1]["val_loss"]
    # Different seeds built different initial weights.
    sgd = [r.history[0]["val_loss"] for r in result.records if r.variant == "sgd"]
    assert sgd[0] != sgd[1]


def test_compare_copies_a_module_for_each_run_and_picks_up_finished_runs(tmp_path):
    module = build()
    before = [p.detach().clone() for p in module.parameters()]
    first = nnopt.compare(RECIPE, seeds=2, model=module, data=data(), out=tmp_path / "c",
                          report=False)  # fmt: skip
    assert all(torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))
    summary = json.loads((tmp_path / "c" / "runs" / "mine" / "seed-0" / "summary.json").read_text())
    again = nnopt.compare(RECIPE, seeds=2, model=module, data=data(), out=tmp_path / "c",
                          report=False)  # fmt: skip
    assert again.records[0].summary == summary == first.records[0].summary


def test_a_model_function_that_returns_no_module_is_one_line(tmp_path):
    with pytest.raises(UserError, match="returned a int, expected a torch.nn.Module"):
        nnopt.compare(RECIPE, seeds=1, model=lambda: 3, data=data(), out=tmp_path / "c")


def test_lr_find_sweeps_your_model_and_puts_it_back(tmp_path):
    model = build()
    before = [p.detach().clone() for p in model.parameters()]
    result = nnopt.lr_find(RECIPE, model=model, data=data(), min_lr=1e-4, max_lr=10.0,
                           steps=40)  # fmt: skip
    assert result.suggestion is not None and 1e-4 <= result.suggestion <= 10.0
    assert len(result.lrs) <= 40 and result.lrs[0] == pytest.approx(1e-4)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert result.plot(tmp_path / "lr.png").stat().st_size > 1000


def test_every_data_field_but_the_source_applies_to_data_passed_from_python():
    from nnopt.recipe.schema import DataSpec
    from nnopt.training.passed import DATA_SOURCE, as_recipe

    values = {"val_fraction": 0.3, "standardize": False, "holdout": "validation",
              "task": "regression", "loader": "stream", "workers": 2,
              "pin_memory": True}  # fmt: skip
    assert set(values) == set(DataSpec.model_fields) - set(DATA_SOURCE)  # a new field: add it
    recipe = as_recipe({**RECIPE, "data": {"name": "digits", **values}}, data_passed=True)
    assert {k: getattr(recipe.data, k) for k in values} == values
