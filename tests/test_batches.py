"""Batch index streams: coverage, determinism, exact resume, modes and errors."""

from __future__ import annotations

import typing
from itertools import islice

import pytest
import torch
from recipe_helpers import make

from nnopt.cli import main
from nnopt.data.batches import MODES, Batches
from nnopt.recipe import RecipeError
from nnopt.recipe.schema import TrainSpec
from nnopt.training import train


def _take(batches: Batches, count: int, epoch: int = 0, position: int = 0) -> list[list[int]]:
    return [b.tolist() for b in islice(batches.iter_from(epoch, position), count)]


@pytest.mark.parametrize(
    ("mode", "batch_size", "per_epoch", "last"),
    [
        ("minibatch", 16, 7, 4),
        ("minibatch", 25, 4, 25),
        ("stochastic", None, 100, 1),
        ("batch", None, 1, 100),
    ],
)
def test_each_index_once_per_epoch(mode, batch_size, per_epoch, last):
    batches = Batches(100, mode=mode, batch_size=batch_size, seed=1)
    assert batches.batches_per_epoch == per_epoch
    for epoch in range(2):
        epoch_batches = batches.epoch_batches(epoch)
        assert len(epoch_batches) == per_epoch and len(epoch_batches[-1]) == last
        assert all(b.dtype == torch.int64 for b in epoch_batches)
        assert sorted(torch.cat(epoch_batches).tolist()) == list(range(100))


def test_batch_mode_is_ordered_and_minibatch_shuffled():
    assert Batches(10, mode="batch", seed=3).epoch_order(5).tolist() == list(range(10))
    assert Batches(10, mode="minibatch", batch_size=2).epoch_order(0).tolist() != list(range(10))


def test_order_depends_only_on_seed_and_epoch():
    a = Batches(50, mode="minibatch", batch_size=8, seed=7)
    b = Batches(50, mode="minibatch", batch_size=8, seed=7)
    torch.manual_seed(123)  # the global generator must play no part
    assert torch.equal(a.epoch_order(3), b.epoch_order(3))
    assert not torch.equal(a.epoch_order(0), a.epoch_order(1))
    assert not torch.equal(a.epoch_order(0), Batches(50, batch_size=8, seed=8).epoch_order(0))


def test_iter_from_is_the_tail_of_the_full_stream():
    batches = Batches(23, mode="minibatch", batch_size=5, seed=2)  # 5 batches, last of 3
    full = _take(batches, 20)
    per = batches.batches_per_epoch
    for step in (0, 3, 4, 5, 7, 12):
        assert _take(batches, 20 - step, step // per, step % per) == full[step:]
    assert _take(batches, 3, 0, 8) == full[8:11]  # a position past the epoch carries over
    assert [b.tolist() for b in islice(iter(batches), 6)] == full[:6]


def test_stochastic_resume_across_epochs():
    batches = Batches(4, mode="stochastic", seed=0)
    full = _take(batches, 12)
    assert _take(batches, 6, 1, 2) == full[6:]
    assert all(len(b) == 1 for b in full)


def test_errors():
    with pytest.raises(ValueError, match="choose one of batch, stochastic, minibatch"):
        Batches(10, mode="online")
    with pytest.raises(ValueError, match=">= 1"):
        Batches(10, mode="minibatch", batch_size=0)
    with pytest.raises(ValueError, match="larger than the 10 training examples"):
        Batches(10, mode="minibatch", batch_size=11)
    with pytest.raises(ValueError, match="needs a batch_size"):
        Batches(10, mode="minibatch")
    with pytest.raises(ValueError, match="at least one example"):
        Batches(0, mode="batch")
    with pytest.raises(ValueError, match=">= 0"):
        Batches(10, mode="batch").iter_from(-1, 0)
    # Batch size is irrelevant outside minibatch mode (a recipe default must not break it).
    assert Batches(10, mode="batch", batch_size=64).batches_per_epoch == 1


# --- one list of modes, one Batches per run ------------------------------------------------


def test_the_recipe_takes_its_modes_from_batches():
    assert typing.get_args(TrainSpec.model_fields["mode"].annotation) == MODES
    with pytest.raises(RecipeError, match="train.mode must be one of " + ", ".join(MODES)):
        make(train={"mode": "online"})
    for mode in MODES:
        batches = make(train={"mode": mode, "batch_size": 7}).batches(20)
        assert (batches.mode, batches.n, batches.seed) == (mode, 20, 0)
        assert batches.batch_size == Batches(20, mode=mode, batch_size=7).batch_size


def test_a_run_and_an_lr_find_build_their_batches_once(tmp_path, monkeypatch, capsys):
    built: list[Batches] = []
    real_init = Batches.__init__

    def counting_init(self, *args, **kwargs):
        built.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(Batches, "__init__", counting_init)
    recipe = make(seed=5, model={"hidden": [8]}, train={"mode": "batch", "steps": 3})
    train(recipe)
    assert [(b.mode, b.seed) for b in built] == [("batch", 5)]
    built.clear()
    path = tmp_path / "tiny.toml"
    recipe.save(path)
    main(["lr-find", str(path), "--steps", "4", "--out", str(tmp_path / "lr")])
    assert [(b.mode, b.seed) for b in built] == [("batch", 5)]  # the recipe's own batches
