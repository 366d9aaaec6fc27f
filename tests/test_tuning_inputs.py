"""Every bad input of ``nnopt compare --tune`` is one line naming its flag, exit status 2, no
traceback, before anything runs (issue 24)."""

from __future__ import annotations

import pytest
from recipe_helpers import tiny_run

from nnopt.cli import main

ADAM = tiny_run()  # an 8-unit MLP on digits with adam


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--tune", "optimizer.lr=log:1e-2:1e-2", "--budget", "4"],
         "--tune optimizer.lr=log:1e-2:1e-2: the range is empty (need LO < HI)"),
        (["--tune", "optimizer.lr=log:1:1e-3", "--budget", "4"],
         "--tune optimizer.lr=log:1:1e-3: the range is inverted (need LO < HI)"),
        (["--tune", "optimizer.lr=log:0:1", "--budget", "4"],
         "--tune optimizer.lr=log:0:1: a log range needs LO > 0"),
        (["--tune", "optimizer.lr=log:1e-4:1", "--budget", "0"], "--budget must be >= 1, got 0"),
        (["--tune", "optimizer.momentum=0:0.99", "--budget", "4"],
         "--tune optimizer.momentum: optimizer 'adam' (tiny) has no momentum"),
        (["--tune", "model.depth=1,2", "--budget", "4"], "--tune model.depth (tiny): "),
        (["--tune", "optimizer.lr", "--budget", "4"], "--tune 'optimizer.lr': expected KEY="),
        (["--budget", "4"], "--tune needs at least one KEY=RANGE"),
    ],
)  # fmt: skip
def test_each_bad_input_is_one_line_naming_the_flag(tmp_path, capsys, argv, expected):
    path = tmp_path / "tiny.toml"
    path.write_text(ADAM)
    out = tmp_path / "out"
    assert main(["compare", str(path), "--out", str(out), "--quiet", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"nnopt compare: error: {expected}")
    assert not (out / "tuning").exists()  # nothing ran


def test_a_tune_table_outside_the_declared_range_is_refused(tmp_path, capsys):
    path = tmp_path / "tiny.toml"
    path.write_text(ADAM + '[tune]\n"optimizer.lr" = "log:1e-5:1"\n')
    argv = ["compare", str(path), "--tune", "optimizer.lr=log:1e-4:1", "--budget", "2"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == (
        "nnopt compare: error: tiny: [tune] optimizer.lr=log:1e-05:1 is not inside --tune "
        "optimizer.lr=log:0.0001:1\n"
    )
