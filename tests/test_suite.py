"""``nnopt bench-suite`` on two tiny workloads: targets set from the reference optimizers reach
the profile, the scores match the ratios by hand, and the targets are stored in the file."""

from __future__ import annotations

import math
import shutil

import pytest
from recipe_helpers import tiny_run

from nnopt.cli import main
from nnopt.experiments import profile, suite
from nnopt.experiments.suite_report import write
from nnopt.recipe import Recipe

TINY = suite.Settings("quick", ("optimizer.lr=log:1e-3:1e-1",), budget=2, seeds=1)


def workloads(targets: dict[str, float]) -> list[suite.Workload]:
    digits = Recipe.loads(tiny_run(steps=20, eval_every=5)).with_overrides(
        ["data.holdout=validation"]
    )
    quadratic = digits.with_overrides(["data.name=quadratic", "model.kind=linear",
                                       "name=quadratic"])  # fmt: skip
    return [suite.Workload(r.name, r, targets.get(r.name)) for r in (digits, quadratic)]


def test_suite_targets_then_profile(tmp_path, monkeypatch):
    reference = suite.run_suite(TINY, workloads({}), ["sgd", "adam"], tmp_path / "ref")
    assert reference.ratios == {} and reference.scores == {}  # no target: not profiled
    targets = suite.targets_from(reference)
    assert set(targets) == {"tiny", "quadratic"}
    best = max(reference.rows["tiny"], key=lambda r: r.tuned.median)
    runs = reference.records["tiny"][best.variant]
    assert targets["tiny"] == min(max(row["val_accuracy"] for row in r.history) for r in runs)

    found = suite.run_suite(TINY, workloads(targets), ["sgd", "adam"], tmp_path / "scored")
    for name in ("sgd", "adam"):
        by_hand = sum(
            (profile.MAX_RATIO - max(row[name], 1)) if math.isfinite(row[name]) else 0
            for row in found.ratios.values()
        ) / (2 * (profile.MAX_RATIO - 1))
        assert found.scores[name] == pytest.approx(by_hand)
    files = write(found, tmp_path / "scored", "nnopt bench-suite --quick", 1.0)
    assert "| optimizer | score |" in files["suite.md"].read_text()
    assert files["profile"].is_file()

    copy = tmp_path / "suite.toml"
    shutil.copy(suite.SUITE, copy)
    monkeypatch.setattr(suite, "SUITE", copy)
    suite.write_targets(TINY, targets)
    stored = suite.load_workloads(TINY, [])
    assert not {w.name for w in stored} & set(targets)  # the built-in workloads kept theirs
    import tomllib

    stored_targets = tomllib.loads(copy.read_text())["targets"]["quick"]
    assert {k: stored_targets[k] for k in targets} == targets  # exactly: no rounding


def test_bad_suite_input_is_one_line(tmp_path, capsys):
    assert main(["bench-suite", "--optimizers", "adamx", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(
        "nnopt bench-suite: error: --optimizers: unknown adamx"
    )
    assert main(["bench-suite", "--budget", "0", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "nnopt bench-suite: error: --budget must be >= 1, got 0\n"


def test_an_optimizer_that_cannot_train_the_model_is_a_failure_not_a_crash(tmp_path):
    tiny = Recipe.loads(tiny_run(steps=5, eval_every=5)).with_overrides(["data.holdout=validation"])
    found = suite.run_suite(
        TINY, [suite.Workload("tiny", tiny, 0.0)], ["adam", "muon_torch"], tmp_path
    )  # fmt: skip (torch's Muon: 2-D parameters only)
    reason = "optimizer 'muon_torch' takes 2-D parameters only and this model has others"
    assert found.skipped == {"tiny": {"muon_torch": reason}}
    assert found.ratios == {"tiny": {"adam": 1.0, "muon_torch": math.inf}}
    assert found.scores == {"adam": 1.0, "muon_torch": 0.0}
