"""train.compile: the same run within float rounding, compile time apart, checkpoints and
resume unchanged (state_dict keys without torch.compile's ``_orig_mod.`` prefix)."""

from __future__ import annotations

import json
import time

import pytest
import torch

from nnopt.recipe import Recipe
from nnopt.training import compiled, train
from nnopt.training.metrics import read_metrics

TINY = """
name = "digits-compiled"
seed = 1
[data]
name = "digits"
[model]
kind = "mlp"
hidden = [16]
[optimizer]
name = "adam"
lr = 0.01
[regularization]
l2 = 1e-4
[train]
batch_size = 64
steps = 30
eval_every = 10
"""


def tiny(*overrides: str) -> Recipe:
    return Recipe.loads(TINY).with_overrides(list(overrides))


def test_compile_time_is_reported_apart_from_the_training_time(tmp_path, monkeypatch):
    # (no real compilation here: the slow test below does it) A warm-up that takes 1.5 s
    # shows in compile_time, and neither in wall_time nor in the metrics' time.
    calls = []

    def slow_warm_up(fn, model, batches):
        calls.append([len(x) for x, _ in batches])
        time.sleep(1.5)
        return 1.5

    monkeypatch.setattr(compiled, "compiled", compiled.plain)
    monkeypatch.setattr(compiled, "warm_up", slow_warm_up)
    eager = train(tiny(), tmp_path / "eager")
    done = train(tiny("train.compile=true"), tmp_path / "compiled")
    assert eager.summary["compile_time"] is None
    assert done.summary["compile_time"] == 1.5
    assert calls == [[64, 1438 % 64]]  # one batch of each size the run uses (1,438 train)
    assert done.summary["wall_time"] < 1.5
    assert all(row["time"] < 1.5 for row in done.history)
    for a, b in zip(eager.model.parameters(), done.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_the_warm_up_leaves_no_trace():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Dropout())
    fn = compiled.plain(model, torch.nn.CrossEntropyLoss())
    batch = (torch.randn(8, 4), torch.zeros(8).long())
    before = [t.clone() for t in model.state_dict().values()]
    rng = torch.get_rng_state()
    assert compiled.warm_up(fn, model, [batch]) >= 0
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(p.grad is None for p in model.parameters())
    for a, b in zip(before, model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.slow  # torch.compile: ~5 s from a warm Inductor cache, up to a minute cold
def test_compiled_run_equals_the_eager_run_and_resumes(tmp_path):
    eager = train(tiny(), tmp_path / "eager")
    done = train(tiny("train.compile=true"), tmp_path / "compiled")
    assert eager.summary["compile_time"] is None
    assert done.summary["compile_time"] > 0  # reported apart from the training time
    for a, b in zip(eager.model.parameters(), done.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    rows_e = read_metrics(tmp_path / "eager" / "metrics.csv")
    rows_c = read_metrics(tmp_path / "compiled" / "metrics.csv")
    assert [r["step"] for r in rows_e] == [r["step"] for r in rows_c]
    for e, c in zip(rows_e, rows_c, strict=True):
        assert c["val_accuracy"] == pytest.approx(e["val_accuracy"], abs=0.005)
        assert c["val_loss"] == pytest.approx(e["val_loss"], rel=1e-3)
    payload = torch.load(tmp_path / "compiled" / "checkpoint.pt", weights_only=True)
    assert not any("_orig_mod" in key for key in payload["model"])
    assert payload["model"].keys() == eager.model.state_dict().keys()
    summary = json.loads((tmp_path / "compiled" / "summary.json").read_text())
    assert summary["compile_time"] == done.summary["compile_time"]

    # Interrupted and resumed, compiled: the same parameters as the uninterrupted compiled run.
    recipe = tiny("train.compile=true")
    train(recipe, tmp_path / "cut", stop_after=15)
    resumed = train(recipe, tmp_path / "cut", resume=True)
    assert resumed.summary["steps"] == 30
    for a, b in zip(done.model.parameters(), resumed.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.slow  # torch.compile, as above
def test_a_compiled_bf16_run_is_the_eager_one_and_resumes(tmp_path):
    """model.dtype = "bfloat16" compiled: bf16 weights, the float32 loss of the bf16 output
    traced with the forward (the cast is part of the loss), the eager run's numbers."""
    eager = train(tiny("model.dtype=bfloat16"))
    recipe = tiny("model.dtype=bfloat16", "train.compile=true")
    done = train(recipe, tmp_path / "compiled")
    assert {p.dtype for p in done.model.parameters()} == {torch.bfloat16}
    for e, c in zip(eager.history, done.history, strict=True):
        assert c["val_loss"] == pytest.approx(e["val_loss"], rel=1e-2)
    train(recipe, tmp_path / "cut", stop_after=15)
    resumed = train(recipe, tmp_path / "cut", resume=True)
    for a, b in zip(done.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_streamed_run_compiles_on_its_first_batch(tmp_path, monkeypatch):
    # (stubbed warm-up, as above) A Dataset read by a DataLoader has no tensors to slice: the
    # warm-up gets the run's first batch, and the run then draws the same batches as without.
    import nnopt

    seen = []

    def record(fn, model, batches):
        seen.extend(batches)
        return 0.25

    monkeypatch.setattr(compiled, "warm_up", record)
    monkeypatch.setattr(compiled, "compiled", compiled.plain)  # no real torch.compile
    x = torch.randn(50, 4)

    class Pairs(torch.utils.data.Dataset):
        classes = [0, 1]

        def __len__(self):
            return 50

        def __getitem__(self, i):
            return x[i], i % 2

    pairs = Pairs()
    recipe = {"data": {"loader": "stream"}, "optimizer": {"name": "sgd", "lr": 0.1},
              "train": {"steps": 8, "batch_size": 16, "eval_every": 4}}  # fmt: skip
    plain = nnopt.train(recipe, data=pairs)
    recipe["train"]["compile"] = True
    warmed = nnopt.train(recipe, data=pairs)
    assert len(seen) == 1 and seen[0][0].shape == (16, 4)
    assert warmed.summary["compile_time"] == 0.25
    assert [r["val_loss"] for r in warmed.history] == [r["val_loss"] for r in plain.history]
