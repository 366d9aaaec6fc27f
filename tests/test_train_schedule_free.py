"""The trainer with a schedule-free optimizer: evaluated and saved at the average x (BatchNorm
statistics recomputed there), trained at y, resumed bitwise; schedules refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nnopt.data import load_dataset
from nnopt.recipe import Recipe, RecipeError
from nnopt.training import train
from nnopt.training.metrics import evaluation_sums, read_metrics
from nnopt.training.schedule_free import recompute_batch_norm

# A small ResNet (BatchNorm in every block) on the 8x8 digits.
DIGITS_RESNET = """
name = "digits-resnet-sf"
seed = 2
[data]
name = "digits"
[model]
kind = "resnet"
channels = 8
layers = 1
[optimizer]
name = "schedulefree_adamw"
lr = 0.03
warmup_steps = 20
weight_decay = 1e-4
[train]
mode = "minibatch"
batch_size = 64
steps = 200
eval_every = 50
"""


def recipe(*overrides: str) -> Recipe:
    return Recipe.loads(DIGITS_RESNET).with_overrides(list(overrides))


def params_of(model: nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in model.state_dict().values()]


def test_a_run_learns_and_ends_at_the_average_it_saved(tmp_path):
    result = train(recipe(), tmp_path)
    assert result.history[-1]["val_accuracy"] > 0.5  # (chance 0.1; observed 0.64)
    optimizer_state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    saved = optimizer_state["model"]
    # The run ends at x with the statistics of x: what was saved, and what was evaluated.
    for name, tensor in result.model.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    assert not optimizer_state["optimizer"]["param_groups"][0]["train_mode"]


def test_evaluation_is_at_the_average_with_its_batch_norm_statistics(tmp_path):
    """The logged val_loss is that of x with BatchNorm statistics of x: the y it trained at,
    or x with y's statistics, read differently."""
    result = train(recipe("train.steps=100"), tmp_path)
    model = result.model
    assert model is not None
    data = load_dataset("digits", seed=2)
    held_out = [(data.x_test, data.y_test)]
    loss = evaluation_sums(model, nn.CrossEntropyLoss(), held_out)[0] / len(data.y_test)
    assert loss == pytest.approx(result.history[-1]["val_loss"], rel=1e-6)


def test_kill_and_resume_is_bitwise_the_uninterrupted_run(tmp_path):
    every = recipe("train.steps=60", "train.eval_every=20", "train.checkpoint_every=7")
    full = train(every, tmp_path / "full")
    train(every, tmp_path / "cut", stop_after=33)
    resumed = train(every, tmp_path / "cut", resume=True)
    for a, b in zip(params_of(full.model), params_of(resumed.model), strict=True):
        assert torch.equal(a, b)
    drop_time = lambda rows: [{k: v for k, v in r.items() if k != "time"} for r in rows]  # noqa: E731
    assert drop_time(read_metrics(tmp_path / "full" / "metrics.csv")) == drop_time(
        read_metrics(tmp_path / "cut" / "metrics.csv")
    )


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ('schedule.kind="cosine"', 'schedule.kind = "cosine" cannot be used'),
        ("schedule.warmup_steps=10", "set optimizer.warmup_steps = 10"),
        ("plateau.metric=val_loss", r"\[plateau\] cannot be used"),
    ],
)
def test_a_schedule_is_refused_in_one_line(override, words):
    with pytest.raises(RecipeError, match=words) as caught:
        recipe(override)
    assert "replaces the lr schedule" in str(caught.value)


def test_batch_norm_statistics_are_the_mean_over_the_batches_and_the_rng_is_kept():
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.BatchNorm1d(4))
    model[2].running_mean.fill_(7.0)
    batches = [torch.randn(16, 3) for _ in range(3)]
    torch.manual_seed(5)
    before = torch.get_rng_state()
    recompute_batch_norm(model, lambda: batches)
    assert torch.equal(torch.get_rng_state(), before)
    assert model[2].momentum == 0.1 and model[2].num_batches_tracked == 3
    torch.manual_seed(5)  # the same dropout masks: the features the statistics saw
    means = []
    with torch.no_grad():
        for x in batches:
            means.append(model[1](model[0](x)).mean(0))
    torch.testing.assert_close(model[2].running_mean, torch.stack(means).mean(0))
