"""``data.task``, ``train.metric`` and ``data.holdout``: the task is a recipe field, the metric
a run is judged by is one, and the held-out split is named for what it is (test or validation).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nnopt.cli import main
from nnopt.errors import RecipeError
from nnopt.recipe import Recipe
from nnopt.training import train

PROJECT = '''
import numpy as np


def blobs(n=300, with_test=False):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    x = (rng.normal(size=(n, 6)) + 3.0 * np.eye(3, 6)[y]).astype(np.float32)
    if with_test:
        return x[:240], y[:240], x[240:], y[240:]
    return x, y


def counts():
    """Integer targets (0..9) that are a quantity, not classes: a regression."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    return x, np.clip(np.round(3 + 2 * x[:, 0]), 0, 9).astype(np.int64)


def tokens(vocabulary=7):
    """Sequences counting up modulo the vocabulary; the targets are the next tokens."""
    rng = np.random.default_rng(2)
    start = rng.integers(0, vocabulary, 64)
    seq = (start[:, None] + np.arange(9)) % vocabulary
    return {"x_train": seq[:, :-1], "y_train": seq[:, 1:], "num_classes": vocabulary}
'''

RECIPE = """
name = "t"
seed = 0
[data]
factory = "taskproject:blobs"
{data}
[model]
kind = "mlp"
hidden = [16]
[optimizer]
name = "adam"
lr = 0.02
[train]
steps = 40
batch_size = 30
eval_every = 10
{train}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "taskproject.py").write_text(PROJECT)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def recipe(data: str = "", train_: str = "", **replace: str) -> Recipe:
    text = RECIPE.format(data=data, train=train_)
    for old, new in replace.items():
        text = text.replace(old, new)
    return Recipe.loads(text)


def test_the_followed_metric_is_a_recipe_field(project):
    by_accuracy = train(recipe())
    assert by_accuracy.summary["metric"] == "val_accuracy"
    by_loss = train(recipe(train_='metric = "val_loss"'))
    assert by_loss.summary["metric"] == "val_loss"
    losses = [row["val_loss"] for row in by_loss.history]
    assert by_loss.summary["best"]["val_loss"] == min(losses)  # the best is the lowest loss
    with pytest.raises(RecipeError, match="val_perplexity is a language model's"):
        train(recipe(train_='metric = "val_perplexity"'))


def test_compare_and_target_follow_the_metric_and_name_the_split(project, capsys):
    (project / "r.toml").write_text(RECIPE.format(data="", train='metric = "val_loss"'))
    out = project / "cmp"
    assert main(["compare", "r.toml", "--seeds", "1", "--target", "0.5", "--out", str(out),
                 "--quiet"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "validation loss over 1 seed" in printed and "time to 0.5" in printed
    summary = json.loads((out / "summary.json").read_text())
    stats = summary["variants"][0] if "variants" in summary else summary["stats"][0]
    assert stats["metric"] == "val_loss" and stats["held_out"] == "validation"
    history = [row["val_loss"] for row in _history(out)]
    assert stats["reached_target"] == int(any(v <= 0.5 for v in history))


def _history(out: Path) -> list[dict]:
    from nnopt.training.metrics import read_metrics

    (metrics,) = out.glob("**/metrics.csv")
    return read_metrics(metrics)


def test_a_shipped_test_split_is_reported_as_test_and_holdout_can_keep_it_aside(project):
    shipped = recipe(**{'factory = "taskproject:blobs"': 'factory = "taskproject:blobs"\n'
                        "[data.args]\nwith_test = true"})  # fmt: skip
    result = train(shipped)
    assert result.summary["held_out"] == "test"
    from nnopt.data import load

    assert len(load(shipped.data, shipped.seed).x_test) == 60
    aside = shipped.with_overrides(["data.holdout=validation", "data.val_fraction=0.25"])
    data = load(aside.data, aside.seed)
    assert (len(data.x_train), len(data.x_test)) == (180, 60) and data.test_is_validation
    held = {tuple(row) for row in data.x_test.tolist()}
    test_rows = {tuple(row) for row in load(shipped.data, shipped.seed).x_test.tolist()}
    assert not held & test_rows  # the validation rows come from the training split
    assert train(aside).summary["held_out"] == "validation"


def test_data_task_reads_integer_targets_as_a_regression(project):
    auto = recipe(**{"taskproject:blobs": "taskproject:counts"})
    from nnopt.data import load

    assert load(auto.data, auto.seed).task == "classification"  # integers with few values
    forced = recipe('task = "regression"', **{"taskproject:blobs": "taskproject:counts"})
    data = load(forced.data, forced.seed)
    assert data.task == "regression" and data.y_train.dtype == torch.float32
    result = train(forced)
    assert result.summary["metric"] == "val_loss" and math.isnan(result.history[-1]["val_accuracy"])


def test_a_language_model_from_a_factory_learns_the_next_token(project):
    text = (
        RECIPE.format(data='task = "language_model"', train="")
        .replace("taskproject:blobs", "taskproject:tokens")
        .replace(
            'kind = "mlp"\nhidden = [16]', 'kind = "transformer"\nwidth = 16\nlayers = 1\nheads = 2'
        )
    )
    r = Recipe.loads(text).with_overrides(["train.steps=120", "optimizer.lr=0.01"])
    from nnopt.data import load

    data = load(r.data, r.seed)
    assert data.task == "language_model" and data.num_classes == 7
    assert data.x_train.dtype == torch.int64 and data.x_train.shape[1] == 8
    result = train(r)
    first, last = result.history[0], result.history[-1]
    assert last["val_perplexity"] == pytest.approx(math.exp(last["val_loss"]))
    assert last["val_loss"] < 0.5 * first["val_loss"]  # counting up is easy to learn
    assert result.summary["metric"] == "val_loss"


def test_a_plateau_follows_the_runs_metric_unless_it_names_its_own(project):
    from nnopt.training.build import plateau_metric

    plain = recipe(train_="", **{"[train]": "[plateau]\npatience = 1\n[train]"})
    assert plateau_metric(plain, "classification") == "val_accuracy"
    own = plain.with_overrides(["plateau.metric=val_loss"])
    assert plateau_metric(own, "classification") == "val_loss"
    with pytest.raises(RecipeError, match="plateau.metric: val_accuracy is a classification's"):
        plateau_metric(plain.with_overrides(["plateau.metric=val_accuracy"]), "regression")


def test_labels_in_memory_must_be_class_numbers_when_the_count_is_given():
    from nnopt.data.dataset import finalize
    from nnopt.data.user import user_data
    from nnopt.errors import DataError

    made = user_data({"x_train": np.zeros((6, 2)), "y_train": np.array([0, 1, 2, 5, 0, 1]),
                      "num_classes": 4})  # fmt: skip
    with pytest.raises(DataError, match="class numbers 0..3; found 0..5"):
        finalize("d", made, seed=0, val_fraction=0.5, standardize=False)
