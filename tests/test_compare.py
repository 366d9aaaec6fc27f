"""`nnopt compare`: seeds alignment, summary statistics, divergence, resume, the CLI and its
plots and reports; and the `nnopt lr-find` command."""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import math
import re
import shutil

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

import nnopt.training
from nnopt.cli import main
from nnopt.experiments.compare import expand_variants, run_comparison
from nnopt.experiments.stats import (
    RunRecord,
    Spread,
    first_reaching,
    reaches,
    stats_dict,
    variant_stats,
)
from nnopt.recipe import Recipe
from nnopt.training import train
from nnopt.training.build import build_run
from nnopt.training.metrics import read_metrics

TINY = """
name = "tiny"
seed = 5
[data]
name = "digits"
[model]
kind = "mlp"
hidden = [16]
[optimizer]
name = "momentum"
lr = 0.1
[train]
mode = "minibatch"
batch_size = 64
steps = 40
eval_every = 10
"""

PLOTS = ("final_val_accuracy", "val_accuracy_vs_step", "val_accuracy_vs_time", "train_loss", "lr")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models on a shared machine: one thread is several times faster than two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(*overrides: str) -> Recipe:
    return Recipe.loads(TINY).with_overrides(list(overrides))


# --- seeds alignment -----------------------------------------------------------------------


def test_same_seed_gives_the_same_start_in_every_variant():
    variants = expand_variants([tiny()], ["optimizer.name=sgd,adam"])
    assert list(variants) == ["sgd", "adam"]
    assert [v.optimizer.name for v in variants.values()] == ["sgd", "adam"]

    def start(recipe: Recipe, seed: int):
        parts = build_run(recipe.with_overrides([f"seed={seed}"]))
        return parts.model.state_dict(), parts.dataset

    (w_sgd, d_sgd), (w_adam, d_adam) = (start(v, 5) for v in variants.values())
    assert w_sgd.keys() == w_adam.keys()
    for name in w_sgd:
        assert torch.equal(w_sgd[name], w_adam[name]), name
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(d_sgd, field), getattr(d_adam, field)), field

    w_other, d_other = start(variants["sgd"], 6)
    assert not torch.equal(w_other["0.weight"], w_sgd["0.weight"])
    assert not torch.equal(d_other.x_train, d_sgd.x_train)  # another split


# --- statistics ----------------------------------------------------------------------------


def test_spread_on_known_numbers():
    s = Spread.of([4.0, 1.0, 10.0, 3.0, 2.0, math.nan, None])
    assert (s.median, s.low, s.high, s.mean, s.n) == (3.0, 1.0, 10.0, 4.0, 5)
    assert s.std == pytest.approx(math.sqrt(50 / 4), rel=1e-12)  # sample std, n - 1
    assert Spread.of([7.0]) == Spread(7.0, 7.0, 7.0, 7.0, 0.0, 1)
    assert Spread.of([]) is None and Spread.of([math.nan]) is None


def record(seed, rows, *, status="finished", wall=1.0, metric="val_accuracy"):
    history = [
        {"step": s, "time": t, metric: m, "train_loss": tl, "lr": 0.1} for s, t, m, tl in rows
    ]
    summary = {"status": status, "wall_time": wall, "metric": metric}
    return RunRecord("v", seed, summary, history)


def test_variant_stats_on_known_runs_with_one_diverged():
    records = [
        record(0, [(10, 1.0, 0.5, 2.0), (20, 2.0, 0.8, 1.0), (30, 3.0, 0.7, 0.5)], wall=1.0),
        record(1, [(10, 1.5, 0.6, 1.8), (20, 3.0, 0.9, 0.9), (30, 4.5, 0.95, 0.4)], wall=2.0),
        record(2, [(10, 1.0, 0.3, 2.2), (20, 2.0, 0.4, 1.5), (30, 3.0, 0.5, 0.6)], wall=3.0),
        # A diverged run with numbers that would move every statistic if it were counted.
        record(3, [(10, 0.1, 0.99, 0.01)], status="diverged", wall=100.0),
    ]
    s = variant_stats("v", records, "val_accuracy", target=0.75)
    assert (s.runs, s.diverged, s.reached_target) == (4, 1, 2)
    assert (s.final.median, s.final.low, s.final.high, s.final.n) == (0.7, 0.5, 0.95, 3)
    assert s.final.mean == pytest.approx((0.7 + 0.95 + 0.5) / 3)
    assert s.final.std == pytest.approx(np.std([0.7, 0.95, 0.5], ddof=1))
    assert (s.best.median, s.best.low, s.best.high) == (0.8, 0.5, 0.95)
    assert (s.train_loss.median, s.train_loss.low, s.train_loss.high) == (0.5, 0.4, 0.6)
    assert (s.wall_time.median, s.wall_time.high) == (2.0, 3.0)
    # Steps and time at the first evaluation at or above the target; run 2 never gets there.
    assert (s.steps_to_target.median, s.steps_to_target.n) == (20, 2)
    assert (s.time_to_target.low, s.time_to_target.median, s.time_to_target.high) == (2, 2.5, 3)
    as_json = json.loads(json.dumps(stats_dict(s)))
    assert as_json["diverged"] == 1 and as_json["final"]["median"] == 0.7

    all_diverged = variant_stats("v", records[3:], "val_accuracy", target=0.75)
    assert (all_diverged.runs, all_diverged.diverged, all_diverged.reached_target) == (1, 1, 0)
    assert all_diverged.final is None and all_diverged.steps_to_target is None


def test_a_loss_metric_is_minimized_and_reached_from_above():
    assert reaches(0.3, 0.5, "val_loss") and not reaches(0.7, 0.5, "val_loss")
    assert reaches(0.7, 0.5, "val_accuracy") and not reaches(0.3, 0.5, "val_accuracy")
    rows = [(10, 1.0, 2.0, 2.0), (20, 2.0, math.nan, 1.0), (30, 3.0, 0.4, 0.5), (40, 4.0, 0.6, 0.4)]
    r = record(0, rows, metric="val_loss")
    assert first_reaching(r.history, "val_loss", 0.5)["step"] == 30
    s = variant_stats("v", [r], "val_loss", target=0.5)
    assert (s.final.median, s.best.median, s.steps_to_target.median) == (0.6, 0.4, 30)


# --- resume --------------------------------------------------------------------------------


def test_an_interrupted_comparison_resumes_without_rerunning_finished_runs(tmp_path, monkeypatch):
    calls = []
    real_train = nnopt.training.train

    def counting_train(recipe, run_dir, *, resume, quiet, on_step):
        calls.append((recipe.optimizer.name, recipe.seed, resume))
        return real_train(recipe, run_dir, resume=resume, quiet=quiet, on_step=on_step)

    monkeypatch.setattr(nnopt.training, "train", counting_train)
    variants = expand_variants([tiny()], ["optimizer.name=sgd,adam"])
    first = run_comparison(variants, 2, tmp_path)
    assert sorted(calls) == [("adam", 5, False), ("adam", 6, False)] + [
        ("sgd", 5, False),
        ("sgd", 6, False),
    ]
    assert [(r.variant, r.seed) for r in first] == [
        ("sgd", 5),
        ("sgd", 6),
        ("adam", 5),
        ("adam", 6),
    ]

    # Interrupt one run after 20 of its 40 steps, as a killed process would leave it.
    cut = tmp_path / "runs" / "adam" / "seed-6"
    shutil.rmtree(cut)
    stopped = train(variants["adam"].with_overrides(["seed=6"]), cut, stop_after=20)
    assert stopped.summary["status"] == "stopped"
    others = [d for d in (tmp_path / "runs").glob("*/seed-*") if d != cut]
    mtimes = {d: (d / "metrics.csv").stat().st_mtime_ns for d in others}

    calls.clear()
    second = run_comparison(variants, 2, tmp_path)
    assert calls == [("adam", 6, True)]  # only the unfinished run, from its checkpoint
    assert {d: (d / "metrics.csv").stat().st_mtime_ns for d in others} == mtimes
    assert [r.summary["status"] for r in second] == ["finished"] * 4
    resumed = second[3]
    assert resumed.summary["steps"] == 40 and [row["step"] for row in resumed.history] == [
        10,
        20,
        30,
        40,
    ]
    # The resumed run ends exactly where the uninterrupted one did.
    for key in ("val_loss", "val_accuracy", "train_loss"):
        assert [row[key] for row in resumed.history] == [row[key] for row in first[3].history]

    calls.clear()
    run_comparison(variants, 2, tmp_path)
    assert calls == []


# --- the command line, end to end ----------------------------------------------------------


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """One `nnopt compare` with --jobs 2: a sane lr and one that diverges, 2 seeds each."""
    root = tmp_path_factory.mktemp("compare")
    recipe = root / "tiny.toml"
    recipe.write_text(TINY)
    out = root / "out"
    argv = ["compare", str(recipe), "--vary", "optimizer.lr=0.1,1e6", "--seeds", "2"]
    argv += ["--jobs", "2", "--target", "0.5", "--out", str(out)]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(argv) == 0
    return out, stdout.getvalue()


def test_compare_writes_summaries_and_counts_the_diverged_variant_apart(compared):
    out, stdout = compared
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["variant"], r["seed"], r["status"]) for r in rows] == [
        ("0.1", "5", "finished"),
        ("0.1", "6", "finished"),
        ("1e6", "5", "diverged"),
        ("1e6", "6", "diverged"),
    ]
    assert all(int(r["steps"]) == 40 for r in rows[:2]) and all(
        int(r["steps"]) < 40 for r in rows[2:]
    )

    variants = {v["variant"]: v for v in json.loads((out / "summary.json").read_text())["variants"]}
    sane, wild = variants["0.1"], variants["1e6"]
    assert (wild["runs"], wild["diverged"], wild["final"], wild["best"]) == (2, 2, None, None)
    assert (sane["runs"], sane["diverged"], sane["reached_target"]) == (2, 0, 2)
    # The sane variant's numbers are its own runs' numbers, untouched by the diverged ones.
    finals = sorted(float(r["final_val_accuracy"]) for r in rows[:2])
    assert sane["final"]["low"] == finals[0] and sane["final"]["high"] == finals[1]
    assert sane["final"]["median"] == pytest.approx(sum(finals) / 2)
    assert 0.5 < sane["final"]["median"] <= 1.0
    histories = [read_metrics(out / "runs" / "0.1" / f"seed-{s}" / "metrics.csv") for s in (5, 6)]
    assert sane["steps_to_target"]["low"] == min(
        first_reaching(h, "val_accuracy", 0.5)["step"] for h in histories
    )

    table = (out / "report.md").read_text()
    sane_row = next(line for line in table.splitlines() if line.startswith("| 0.1 |"))
    wild_row = next(line for line in table.splitlines() if line.startswith("| 1e6 |"))
    assert "| 0/2 |" in sane_row and "(2/2 reached)" in sane_row
    assert "| 2/2 |" in wild_row and "| - | - |" in wild_row and "never" in wild_row
    assert "%" in sane_row and "nan" not in table.lower()
    assert "0/2" in stdout and "2/2" in stdout  # the terminal table


def test_compare_runs_write_checkpoints_that_load_with_weights_only(compared):
    out, _ = compared
    paths = sorted(out.glob("runs/*/seed-*/checkpoint.pt"))
    assert len(paths) >= 2  # (the diverging variant may stop before its first checkpoint)
    for path in paths:
        assert torch.load(path, weights_only=True)["run"]["step"] > 0


def test_compare_runs_share_their_seeds_start(compared):
    out, _ = compared
    for seed in (5, 6):
        recipes = [
            Recipe.load(out / "runs" / v / f"seed-{seed}" / "recipe.toml") for v in ("0.1", "1e6")
        ]
        assert [r.seed for r in recipes] == [seed, seed]
        assert [r.optimizer.lr for r in recipes] == [0.1, 1e6]
        a, b = (build_run(r).model.state_dict() for r in recipes)
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_compare_writes_every_plot_and_both_reports(compared):
    out, _ = compared
    for name in PLOTS:
        path = out / "plots" / f"{name}.png"
        assert path.stat().st_size > 5_000, name
        image = mpimg.imread(path)
        assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 500, name
        assert image[..., :3].var() > 1e-3, name  # not a blank canvas

    md = (out / "report.md").read_text()
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert sorted(linked) == sorted(f"plots/{name}.png" for name in PLOTS)
    assert all((out / link).is_file() for link in linked)
    # The recipes: what differs first (the lr), the rest once (issue 20, item 10).
    assert md.count("```toml") == 1 and "| `optimizer.lr` | `0.1` | `1000000.0` |" in md

    page = (out / "report.html").read_text()
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(embedded) == len(PLOTS)
    assert {base64.b64decode(e) for e in embedded} == {
        (out / "plots" / f"{n}.png").read_bytes() for n in PLOTS
    }
    assert "<table>" in page and "2/2" in page


@pytest.mark.parametrize(
    "args, expected",
    [
        (("--vary", "optimizer.lr"), "--vary needs KEY=V1,V2"),
        (("--vary", "optimizer.nosuch=1,2"), "nosuch"),
        (("--seeds", "0"), "--seeds must be >= 1"),
        (("--jobs", "0"), "--jobs must be >= 1"),
    ],
)
def test_compare_user_errors_are_one_line(tmp_path, capsys, args, expected):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY)
    assert main(["compare", str(recipe), "--out", str(tmp_path / "out"), *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnopt compare: error: "), lines
    assert expected in lines[0]
    assert not (tmp_path / "out" / "runs").exists()  # nothing was run


def test_compare_missing_recipe_is_one_line(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "missing.toml")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "not found" in lines[0], lines


# --- lr-find -------------------------------------------------------------------------------


def test_lr_find_cli_writes_its_outputs_and_applies_the_suggestion(tmp_path, capsys):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY)
    out = tmp_path / "lr"
    argv = ["lr-find", str(recipe), "--steps", "40", "--min-lr", "1e-4", "--max-lr", "100"]
    assert main([*argv, "--out", str(out), "--apply"]) == 0
    stdout = capsys.readouterr().out

    result = json.loads((out / "lr_find.json").read_text())
    assert {"lrs", "losses", "smoothed", "suggestion", "min_over_10"} <= set(result)
    n = len(result["lrs"])
    assert 5 <= n <= 40 and len(result["losses"]) == len(result["smoothed"]) == n
    assert result["lrs"][0] == pytest.approx(1e-4) and np.all(np.diff(result["lrs"]) > 0)
    assert 1e-4 <= result["suggestion"] <= result["lrs"][-1]
    assert result["suggestion"] in result["lrs"]
    assert 1e-5 <= result["min_over_10"] <= result["lrs"][-1] / 10
    assert f"suggested lr {result['suggestion']:.3g}" in stdout

    image = mpimg.imread(out / "lr_find.png")
    assert (out / "lr_find.png").stat().st_size > 5_000 and image[..., :3].var() > 1e-3

    applied = Recipe.load(out / "tiny.lr_found.toml")
    assert applied.optimizer.lr == result["suggestion"]
    assert applied.with_overrides(["optimizer.lr=0.1"]) == Recipe.loads(TINY)


def test_lr_find_with_too_few_steps_says_so(tmp_path, capsys):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY)
    assert main(["lr-find", str(recipe), "--steps", "4", "--out", str(tmp_path / "lr")]) == 1
    assert "too few points" in capsys.readouterr().out
    assert (tmp_path / "lr" / "lr_find.json").is_file()


def test_a_target_table_prints_unwrapped_into_a_log(monkeypatch):
    # Off a terminal (a log, CI, `| tee`) the nine-column table with --target must keep each
    # row on one line: wrapped cells were unreadable (and broke make readme-check).
    import io
    import sys

    from nnopt.console import console
    from nnopt.experiments.report import rich_table
    from nnopt.experiments.stats import Spread, VariantStats

    spread = Spread(median=0.957, low=0.939, high=0.966, mean=0.955, std=0.0101, n=5)
    stats = [VariantStats("mnist1d_fast", "val_accuracy", 5, 0, spread, spread,
                          Spread.of([0.0059]), Spread.of([6.7]), Spread.of([450.0]),
                          Spread.of([4.3]), 5, held_out="test")]  # fmt: skip
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    table, left_out = rich_table(stats, 0.94, "test accuracy over 5 seeds", console())
    assert left_out == 0
    console().print(table)
    (row,) = [line for line in out.getvalue().splitlines() if "mnist1d_fast" in line]
    assert "95.70% [93.90%, 96.60%]" in row and "450 (5/5 reached)" in row
