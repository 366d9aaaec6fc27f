"""The command line's smaller promises (issue 20, item 11): --debug after the subcommand, the
user-error status for a diverged run, Python's words from the Python API, --help texts and
defaults, plurals, no empty progress box left behind, one line for the CUDA cases."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from recipe_helpers import tiny_run
from rich.console import Console

import nnopt
from nnopt.cli import build_parser, main
from nnopt.errors import RecipeError, UserError
from nnopt.experiments.live import CompareProgress

RECIPE = tiny_run()


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(RECIPE)
    return path


def test_debug_is_accepted_after_the_subcommand_too(tmp_path):
    with pytest.raises(RecipeError, match="recipe file not found"):  # the traceback, raised
        main(["train", str(tmp_path / "missing.toml"), "--debug"])
    with pytest.raises(RecipeError):
        main(["--debug", "train", str(tmp_path / "missing.toml")])
    assert main(["train", str(tmp_path / "missing.toml")]) == 2  # without it: one line


def test_a_diverged_run_exits_with_the_user_error_status(recipe, tmp_path, capsys):
    argv = ["train", str(recipe), "--out", str(tmp_path / "run"), "--quiet"]
    assert main([*argv, "--set", "optimizer.name=sgd", "--set", "optimizer.lr=1e12"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nnopt train: error: loss became "), err


def test_the_python_api_speaks_python_not_flags(recipe, tmp_path):
    nnopt.train(recipe, tmp_path / "run")
    with pytest.raises(UserError) as info:
        nnopt.train(recipe, tmp_path / "run")
    assert str(info.value).endswith("already holds a run: pass resume=True to continue it, or "
                                    "another out")  # fmt: skip
    assert "--" not in str(info.value)


def _help(*command: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command[0]]
    return " ".join(sub.format_help().split())


def test_help_texts_say_what_each_option_does_and_its_default():
    lr_find = _help("lr-find")
    for text in ("--set KEY=VALUE override a recipe field", "first lr (default 1e-6)",
                 "last lr (default 10)", "default: runs/lr-find-NAME"):  # fmt: skip
        assert text in lr_find, text
    compare = _help("compare")
    assert "default: runs/compare-NAME" in compare and "own process (default 1)" in compare
    assert "List the data sets a recipe can name" in _help("datasets")
    assert "Time one optimizer step of each nnopt optimizer" in _help("bench")


def test_one_seed_and_one_variant_are_singular(recipe, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", str(recipe), "--seeds", "1", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "over 1 seed " in printed and "1 seeds" not in printed
    assert "1 variant x 1 seed." in (out / "report.md").read_text()


def test_the_progress_box_is_cleared_when_the_runs_are_done():
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=80)
    with CompareProgress(console, total=2):
        pass
    drawn = screen.getvalue()
    # The box ("0 of 2 runs done") was drawn, then erased: no empty box stays above the table.
    assert "runs done" in drawn and drawn.rstrip("\n").endswith("\x1b[2K")


def test_the_cuda_cases_are_one_line_without_a_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the CUDA cases run")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider",
         "tests/test_cuda.py"],
        cwd=Path(__file__).parent.parent, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "SKIPPED" not in done.stdout, done.stdout
    assert "CUDA not available: " in done.stdout and " CUDA tests not run" in done.stdout
