"""``nnopt compare --tune`` (issue 24): equal budgets, the same points, validation apart from
test, fresh evaluation seeds, a ranking that tuning reverses, and resume.

The workload is a linear regression with features on scales 1..30, not standardized: plain
SGD's step is limited by the largest scale, Adam's per-coordinate step is not, so tuned Adam
wins while an untuned (too small) Adam lr loses. Each run is 30 full-batch steps (a second).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import qmc

import nnopt
import nnopt.data
import nnopt.training
from nnopt.errors import UsageError
from nnopt.experiments import space as spaces
from nnopt.training.metrics import read_metrics

N_TRAIN, N_TEST = 240, 60


def problem() -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    scales = np.geomspace(1, 30, 8)
    x = (rng.normal(size=(N_TRAIN + N_TEST, 8)) * scales).astype(np.float32)
    y = (x @ (rng.normal(size=8) / scales) + 0.01 * rng.normal(size=len(x))).astype(np.float32)
    return x[:N_TRAIN], y[:N_TRAIN, None], x[N_TRAIN:], y[N_TRAIN:, None]


def recipe(name: str, optimizer: str, lr: float, **tune: str) -> dict:
    made = {
        "name": name, "data": {"standardize": False}, "model": {"kind": "linear"},
        "optimizer": {"name": optimizer, "lr": lr},
        "train": {"steps": 30, "mode": "batch", "eval_every": 10},
    }  # fmt: skip
    if tune:
        made["tune"] = tune
    return made


A, B = recipe("A", "sgd", 1e-3), recipe("B", "adam", 1e-4)  # B's own lr is far too small
SPACE = ["optimizer.lr=log:1e-4:1"]


@pytest.fixture(scope="module")
def loads():
    return []


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, loads):
    """One tuned comparison (5 trials, 2 evaluation seeds), every data load recorded."""
    original = nnopt.data.load

    def spy(source, seed, passed=None):
        made = original(source, seed, passed)
        loads.append((source.holdout, seed, len(made.x_test), made.test_is_validation))
        return made

    patch = pytest.MonkeyPatch()
    patch.setattr(nnopt.data, "load", spy)
    try:
        out = tmp_path_factory.mktemp("tuned")
        yield nnopt.compare([A, B], seeds=2, data=problem(), out=out, tune=SPACE, budget=5)
    finally:
        patch.undo()


def test_every_variant_gets_the_budget_and_the_same_log_grid(tuned):
    grid = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]  # one dimension: the log grid, ends included
    for result in tuned.results:
        assert len(result.trials) == 5
        assert [t.point["optimizer.lr"] for t in result.trials] == pytest.approx(grid)


def test_the_chosen_point_is_the_best_validation_trial(tuned):
    for result in tuned.results:
        finals = []
        for trial in result.trials:  # read back from the trial's own files
            run = Path(trial.record.run_dir)
            if json.loads((run / "summary.json").read_text())["status"] == "diverged":
                finals.append(math.nan)
            else:
                finals.append(read_metrics(run / "metrics.csv")[-1]["val_loss"])
        best = min((v, i) for i, v in enumerate(finals) if not math.isnan(v))[1]
        assert result.chosen == best
        assert result.tuned[0].summary["held_out"] == "test"
        assert result.trials[0].record.summary["held_out"] == "validation"


def test_tuning_never_reads_the_test_split_and_evaluation_uses_fresh_seeds(tuned, loads):
    trials = [load for load in loads if load[0] == "validation"]
    runs = [load for load in loads if load[0] != "validation"]
    assert len(trials) == 2 * 5 and len(runs) == 2 * 2 * 2  # tuned and defaults, 2 seeds
    # trials: a validation split carved from the 240 training rows, never the 60 test rows
    assert {(n, carved) for _, _, n, carved in trials} == {(48, True)}
    assert {(n, carved) for _, _, n, carved in runs} == {(N_TEST, False)}
    tuning_seeds = {seed for _, seed, _, _ in trials}
    evaluation_seeds = {seed for _, seed, _, _ in runs}
    assert tuning_seeds == {0} and evaluation_seeds == {1, 2}


def test_tuning_reverses_the_untuned_ranking(tuned, tmp_path):
    untuned = nnopt.compare([A, B], seeds=2, data=problem(), out=tmp_path, report=False,
                            overrides=["seed=1"])  # the evaluation seeds, 1 and 2  # fmt: skip
    medians = {s.variant: s.final.median for s in untuned.stats}
    assert medians["A"] < medians["B"]  # untuned: SGD's loss is lower
    rows = {row.variant: row for row in tuned.rows}
    assert tuned.best == "B" and rows["B"].tuned.median < rows["A"].tuned.median
    assert rows["A"].defaults.median == pytest.approx(medians["A"])  # the defaults column
    assert rows["A"].vs_best.mean > 0 and rows["A"].point == {"optimizer.lr": 1e-3}
    assert rows["A"].edges == [] and rows["B"].edges == []  # both inside the range
    assert (tuned.out / "tuned.md").is_file() and (tuned.out / "plots/lr_sensitivity.png").is_file()


def test_resume_skips_finished_trials_and_refuses_a_changed_budget(tuned, monkeypatch):
    shutil.rmtree(tuned.out / "tuning" / "A" / "trial-02")
    shutil.rmtree(tuned.out / "tuned" / "B" / "seed-2")
    calls = []
    original = nnopt.training.train
    monkeypatch.setattr(
        nnopt.training, "train", lambda *a, **k: calls.append(a) or original(*a, **k)
    )
    again = nnopt.compare([A, B], seeds=2, data=problem(), out=tuned.out, tune=SPACE, budget=5)
    assert len(calls) == 2  # the two removed, nothing else
    assert [r.chosen for r in again.results] == [r.chosen for r in tuned.results]
    with pytest.raises(UsageError, match=r"^--budget changed .*was 5, now 4"):
        nnopt.compare([A, B], seeds=2, data=problem(), out=tuned.out, tune=SPACE, budget=4)
    with pytest.raises(UsageError, match=r"^--tune changed .*now optimizer.lr=log:0.001:1"):
        nnopt.compare([A, B], seeds=2, data=problem(), out=tuned.out,
                      tune=["optimizer.lr=log:1e-3:1"], budget=5)  # fmt: skip


def test_sobol_points_are_the_same_for_every_variant_and_narrowed_in_their_own_range(tmp_path):
    narrow = recipe("C", "adam", 1e-2, **{"optimizer.lr": "log:1e-3:1e-1"})
    space = ["optimizer.lr=log:1e-4:1", "regularization.l2=0:0.01"]
    found = nnopt.compare([A, narrow], seeds=1, data=problem(), out=tmp_path, tune=space,
                          budget=4, report=False)  # fmt: skip
    unit = qmc.Sobol(d=2, scramble=True, seed=spaces.SOBOL_SEED).random(4)
    a, c = found.results
    assert [t.point["optimizer.lr"] for t in a.trials] == pytest.approx(1e-4 * 1e4 ** unit[:, 0])
    assert [t.point["optimizer.lr"] for t in c.trials] == pytest.approx(1e-3 * 1e2 ** unit[:, 0])
    for result in found.results:
        assert [t.point["regularization.l2"] for t in result.trials] == pytest.approx(
            0.01 * unit[:, 1]
        )
