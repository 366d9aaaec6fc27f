"""Where `compare` and `lr-find` write without --out (issue 20, item 2): runs/compare-NAME and
runs/lr-find-NAME, then -2, -3... as `train` does; the same comparison again is picked up;
a refusal too long for one line lists the rest in a file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from recipe_helpers import tiny_run

from nnopt.cli import main

TINY = tiny_run()


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    (tmp_path / "tiny.toml").write_text(TINY)
    (tmp_path / "other.toml").write_text(TINY.replace('"tiny"', '"other"').replace("adam", "sgd"))
    return tmp_path


def _compare(*args: str) -> None:
    assert main(["compare", *args, "--seeds", "1", "--quiet"]) == 0


def test_two_comparisons_without_out_keep_both_reports(project, capsys):
    _compare("tiny.toml")
    _compare("other.toml")
    _compare("tiny.toml", "other.toml")
    # The first used to be overwritten by the second (both wrote runs/compare).
    for name, variants in (("tiny", ["tiny"]), ("other", ["other"]),
                           ("tiny+other", ["tiny", "other"])):  # fmt: skip
        runs = json.loads((project / "runs" / f"compare-{name}" / "summary.json").read_text())
        assert [r["variant"] for r in runs["runs"]] == variants
    assert f"report: {Path('runs/compare-tiny+other/report.html')}" in capsys.readouterr().out


def test_the_same_comparison_again_is_read_back_and_another_gets_its_own(project, capsys):
    _compare("tiny.toml")
    capsys.readouterr()
    _compare("tiny.toml")  # the same command: picked up, nothing run again
    out = capsys.readouterr().out
    assert "read back 1 finished run from runs/compare-tiny; nothing left to run" in out
    assert not (project / "runs" / "compare-tiny-2").exists()
    _compare("tiny.toml", "--set", "optimizer.lr=0.02")  # same name, another recipe
    assert "report: runs/compare-tiny-2/report.html" in capsys.readouterr().out


def test_lr_find_without_out_never_overwrites_and_names_its_recipe(project, capsys):
    argv = ["lr-find", "tiny.toml", "--steps", "8", "--min-lr", "1e-3", "--max-lr", "1"]
    assert main(argv) in (0, 1)
    assert main([*argv, "--set", "optimizer.lr=0.5"]) in (0, 1)
    out = capsys.readouterr().out
    assert "wrote runs/lr-find-tiny/lr_find.json" in out
    assert "wrote runs/lr-find-tiny-2/lr_find.json" in out
    found = json.loads((project / "runs" / "lr-find-tiny-2" / "lr_find.json").read_text())
    assert found["recipe"] == "tiny" and found["recipe_file"] == "tiny.toml"
    assert found["overrides"] == ["optimizer.lr=0.5"]
    assert (project / "runs" / "lr-find-tiny-2" / "recipe.toml").is_file()


def test_a_long_refusal_is_one_screen_line_with_the_full_list_in_a_file(project, capsys):
    _compare("tiny.toml", "--out", "cmp")
    capsys.readouterr()
    changed = ["optimizer.name=sgd", "optimizer.lr=0.5", "model.hidden=[32,32]",
               "train.batch_size=16", "train.steps=12", "train.eval_every=6",
               "model.activation=tanh", "model.dropout=0.1", "data.val_fraction=0.3"]  # fmt: skip
    sets = [arg for item in changed for arg in ("--set", item)]
    assert main(["compare", "tiny.toml", "--seeds", "1", "--out", "cmp", *sets]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and len(err[0]) <= 210, err  # it was 1,100 characters
    assert "9 fields differ (data.val_fraction, model.activation, model.dropout" in err[0]
    assert " and 6 more; all in cmp/recipe_changes.txt): use another --out" in err[0]
    assert "all in cmp/recipe_changes.txt" in err[0]
    listing = (project / "cmp" / "recipe_changes.txt").read_text()
    assert all(item.partition("=")[0] + ":" in listing for item in changed)
