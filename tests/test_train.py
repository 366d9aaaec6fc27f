"""The trainer: outputs of a run, the three seed modes, exact resume, atomic checkpoints,
divergence, and the `nnopt train` command."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from nnopt.cli import main
from nnopt.data import load_dataset
from nnopt.recipe import Recipe
from nnopt.training import checkpoint as checkpoint_module
from nnopt.training import train
from nnopt.training.metrics import read_metrics

DIGITS = """
name = "digits-tiny"
seed = 3
[data]
name = "digits"
[model]
kind = "mlp"
hidden = [32]
dropout = 0.1
[optimizer]
name = "adam"
lr = 0.01
[schedule]
kind = "warmup_cosine"
warmup_steps = 5
[plateau]
metric = "val_loss"
patience = 0
factor = 0.5
[regularization]
l2 = 1e-4
[train]
mode = "minibatch"
batch_size = 64
steps = 60
eval_every = 20
"""


def digits_recipe(*overrides: str) -> Recipe:
    return Recipe.loads(DIGITS).with_overrides(list(overrides))


def params_of(result) -> list[torch.Tensor]:
    return [p.detach().clone() for p in result.model.parameters()]


def test_a_run_writes_its_outputs_and_learns(tmp_path):
    result = train(digits_recipe(), tmp_path)
    for name in ("recipe.toml", "metrics.csv", "summary.json", "checkpoint.pt"):
        assert (tmp_path / name).is_file(), name
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [r["step"] for r in rows] == [20, 40, 60]
    assert set(rows[0]) == {"step", "epoch", "time", "lr", "train_loss", "val_loss", "val_accuracy"}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == 60
    assert summary["parameters"] == 64 * 32 + 32 + 32 * 10 + 10
    # 60 steps of Adam on digits: far above chance (10%).
    assert rows[-1]["val_accuracy"] > 0.85
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    # The resolved recipe reproduces the run.
    assert Recipe.load(tmp_path / "recipe.toml") == digits_recipe()
    again = train(Recipe.load(tmp_path / "recipe.toml"))
    for a, b in zip(params_of(result), params_of(again), strict=True):
        assert torch.equal(a, b)


def test_the_run_directory_says_how_each_layer_was_initialized(tmp_path):
    train(digits_recipe("train.steps=2"), tmp_path / "auto")
    lines = (tmp_path / "auto" / "init.txt").read_text().splitlines()
    assert lines[0].split() == ["layer", "kind", "activation", "scheme", "gain", "std", "why"]
    # One line per layer of the mlp (64 -> 32 -> 10, ReLU between): name, scheme, why.
    assert [line.split()[:4] for line in lines[1:]] == [
        ["0", "Linear(64->32)", "ReLU", "he"],
        ["3", "Linear(32->10)", "linear", "xavier"],
    ]
    assert lines[1].endswith("auto: He, for the ReLU that follows")
    assert lines[2].endswith("auto: Xavier, no activation follows")
    train(digits_recipe("train.steps=2", "model.init=xavier"), tmp_path / "forced")
    forced = (tmp_path / "forced" / "init.txt").read_text().splitlines()
    assert forced[1].endswith("scheme='xavier' asked for: Xavier, for the ReLU that follows")


@pytest.mark.parametrize(
    ("mode", "per_step", "steps"), [("batch", None, 4), ("stochastic", 1, 30), ("minibatch", 50, 8)]
)
def test_the_three_seed_modes(mode, per_step, steps, monkeypatch):
    seen = []
    real_forward = torch.nn.Sequential.forward

    def spy(self, x):
        if self.training:
            seen.append(len(x))
        return real_forward(self, x)

    monkeypatch.setattr(torch.nn.Sequential, "forward", spy)
    recipe = digits_recipe(
        f"train.mode={mode}", "train.batch_size=50", f"train.steps={steps}", "train.eval_every=2"
    )
    result = train(recipe)
    n_train = len(load_dataset("digits", seed=recipe.seed).x_train)
    expected = per_step or n_train
    assert seen == [expected] * steps
    epochs = [row["epoch"] for row in result.history]
    per_epoch = {"batch": 1, "stochastic": n_train, "minibatch": math.ceil(n_train / 50)}[mode]
    assert epochs[-1] == pytest.approx(steps / per_epoch)


@pytest.mark.parametrize(
    "dtype,storage",
    [
        ("float32", ()),
        ("bfloat16", ()),
        # bfloat16 weights with 8-bit state in every tensor, Kahan or stochastic rounding
        ("bfloat16", ("state_dtype=int8", "min_8bit_size=1", "param_update=kahan")),
        ("bfloat16", ("state_dtype=int8", "min_8bit_size=1", "param_update=stochastic")),
    ],
)
def test_resume_is_bitwise_identical_to_an_uninterrupted_run(tmp_path, dtype, storage):
    options = [f"optimizer.{o}" for o in storage]
    recipe = digits_recipe("train.checkpoint_every=7", f"model.dtype={dtype}", *options)
    full = train(recipe, tmp_path / "full")
    # Interrupted at step 33 (between checkpoints 28 and 35), then resumed from step 28.
    train(recipe, tmp_path / "cut", stop_after=33)
    payload = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert payload["run"]["step"] == 33
    assert {t.dtype for t in payload["model"].values()} == {getattr(torch, dtype)}
    resumed = train(recipe, tmp_path / "cut", resume=True)
    for a, b in zip(params_of(full), params_of(resumed), strict=True):
        assert torch.equal(a, b)
    assert resumed.summary["steps"] == 60
    full_rows = read_metrics(tmp_path / "full" / "metrics.csv")
    cut_rows = read_metrics(tmp_path / "cut" / "metrics.csv")
    drop_time = lambda rows: [{k: v for k, v in r.items() if k != "time"} for r in rows]  # noqa: E731
    assert drop_time(full_rows) == drop_time(cut_rows)


def test_the_checkpoint_holds_the_run_state(tmp_path):
    recipe = digits_recipe("train.checkpoint_every=7")
    train(recipe, tmp_path, stop_after=33)
    payload = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert payload["format"] == checkpoint_module.CHECKPOINT_FORMAT
    state = checkpoint_module.RunState.from_checkpoint(payload)
    assert payload["run"] == state.to_checkpoint()
    # Stopped at 33: one evaluation (step 20) behind it, the 13 losses since then pending.
    assert (state.step, [row["step"] for row in state.history]) == (33, [20])
    assert state.loss_count == 13 and math.isfinite(state.loss_sum) and state.elapsed > 0
    assert state.take_train_loss() == pytest.approx(payload["run"]["loss_sum"] / 13)
    assert (state.loss_sum, state.loss_count) == (0.0, 0)
    assert math.isnan(state.take_train_loss())


def test_a_format_1_checkpoint_still_resumes_exactly(tmp_path):
    recipe = digits_recipe("train.checkpoint_every=7")
    full = train(recipe, tmp_path / "full")
    train(recipe, tmp_path / "old", stop_after=33)
    path = tmp_path / "old" / "checkpoint.pt"
    payload = torch.load(path, weights_only=True)
    run = payload.pop("run")
    window = [run.pop("loss_sum"), run.pop("loss_count")]
    torch.save({**payload, "format": 1, **run, "window": window}, path)  # as nnopt 0.1 wrote
    resumed = train(recipe, tmp_path / "old", resume=True)
    for a, b in zip(params_of(full), params_of(resumed), strict=True):
        assert torch.equal(a, b)
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in full.history]


def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    recipe = digits_recipe("train.steps=40")
    train(recipe, tmp_path, stop_after=20)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    real_save = torch.save

    def dying_save(obj, path, *args, **kwargs):
        real_save(obj, path, *args, **kwargs)
        Path(path).write_bytes(Path(path).read_bytes()[:100])  # half-written file
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.torch, "save", dying_save)
    with pytest.raises(OSError, match="disk full"):
        train(recipe, tmp_path, resume=True)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    assert not list(tmp_path.glob(".checkpoint.pt.*"))  # no stray temporary file
    monkeypatch.undo()
    resumed = train(recipe, tmp_path, resume=True)
    assert resumed.summary["status"] == "finished"


def test_a_non_finite_loss_stops_with_a_message_and_keeps_the_checkpoint(tmp_path):
    recipe = digits_recipe(
        "optimizer.name=sgd",
        "optimizer.lr=1e6",
        "schedule.kind=constant",
        "plateau=none",
        "train.eval_every=1",
    )
    result = train(recipe.with_overrides(["train.steps=200"]), tmp_path)
    assert result.diverged
    message = result.summary["message"]
    assert "step" in message and "lr 1e+06" in message
    payload = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert payload["run"]["step"] < result.summary["steps"]
    assert all(torch.isfinite(t).all() for t in payload["model"].values())


def test_a_linear_model_finds_the_known_optimum():
    recipe = Recipe.from_dict(
        {
            "name": "linreg",
            "data": {"name": "regression", "standardize": False, "options": {"noise": 0.0}},
            "model": {"kind": "linear"},
            "optimizer": {"name": "momentum", "lr": 0.05},
            "train": {"mode": "batch", "steps": 400, "eval_every": 100},
        }
    )
    result = train(recipe)
    data = load_dataset("regression", seed=0, standardize=False, noise=0.0)
    layer = result.model if isinstance(result.model, torch.nn.Linear) else result.model[0]
    w_star = torch.as_tensor(np.asarray(data.extras["w_star"]), dtype=torch.float32).reshape(-1)
    torch.testing.assert_close(layer.weight.detach().reshape(-1), w_star, atol=1e-3, rtol=1e-3)
    assert result.history[-1]["val_loss"] < 1e-5


def test_user_files_npz_and_csv(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    header = "a,b,c,d,e,label"
    rows = [",".join(f"{v:.6f}" for v in xi) + f",{yi}" for xi, yi in zip(x, y, strict=True)]
    (tmp_path / "data.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    for name, options in (("data.npz", {}), ("data.csv", {"target": "label"})):
        recipe = Recipe.from_dict(
            {
                "data": {"name": str(tmp_path / name), "options": options},
                "model": {"kind": "mlp", "hidden": [16]},
                "optimizer": {"name": "adam", "lr": 0.02},
                "train": {"steps": 100, "batch_size": 32, "eval_every": 50},
            }
        )
        result = train(recipe)
        assert result.history[-1]["val_accuracy"] > 0.9, name


def test_cli_train_and_its_user_errors(tmp_path, monkeypatch, capsys):
    recipe_path = tmp_path / "r.toml"
    recipe_path.write_text(DIGITS)
    # One real process, as a user runs it...
    done = subprocess.run(
        [sys.executable, "-m", "nnopt", "train", str(recipe_path), "--set", "train.steps=20"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "runs" / "digits-tiny" / "summary.json").is_file()
    assert "digits-tiny: finished after 20 steps" in done.stdout
    assert "(1 thread)" in done.stdout  # the threads it chose, said

    # ...and the user errors in-process (same entry point, without a start-up each).
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text(DIGITS.replace("lr = 0.01", "lr = -1"))
    for args, expected in [
        (("train", str(bad)), "optimizer.lr"),
        (("train", str(tmp_path / "missing.toml")), "not found"),
        (("train", str(recipe_path), "--set", "optimizer.lr"), "="),
        (("train", "--resume", str(tmp_path / "nowhere")), "checkpoint"),
        (("train", str(recipe_path), "--out", "runs/digits-tiny"), "already holds a run"),
    ]:
        assert main(list(args)) == 2, args
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], err
        assert lines[0].startswith("nnopt train: error: ")


def test_cli_datasets_lists_every_embedded_set_with_its_size(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("digits", "mnist1d", "quadratic", "spirals", "regression"):
        assert name in out
    assert "4000" in out and "1797" in out  # mnist1d train size, digits size


def test_tensorboard_gets_every_metric_when_installed(tmp_path, monkeypatch):
    """With the tensorboard package present, each evaluation row reaches a SummaryWriter."""
    written: list[tuple[str, float, int]] = []
    logdirs: list[str] = []

    class RecordingWriter:
        def __init__(self, log_dir):
            logdirs.append(log_dir)

        def add_scalar(self, key, value, step):
            written.append((key, value, step))

        def flush(self):
            pass

        def close(self):
            written.append(("closed", 0.0, 0))

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = RecordingWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: object() if name == "tensorboard" else real_find_spec(name, *a),
    )
    train(digits_recipe(), tmp_path)
    rows = read_metrics(tmp_path / "metrics.csv")
    expected = [
        (key, row[key], row["step"])
        for row in rows
        for key in ("lr", "train_loss", "val_loss", "val_accuracy")
    ]
    assert logdirs == [str(tmp_path / "tensorboard")]
    assert [(k, step) for k, _, step in written[:-1]] == [(k, step) for k, _, step in expected]
    assert [v for _, v, _ in written[:-1]] == pytest.approx([v for _, v, _ in expected])
    assert written[-1][0] == "closed"
