"""User errors: one type (nnopt.errors), raised at the boundaries, printed by the CLI as one
line; every other exception is a bug and keeps its traceback."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest
from recipe_helpers import make

import nnopt
import nnopt.training
from nnopt import errors
from nnopt.cli import main
from nnopt.data import load_dataset
from nnopt.errors import DataError, RecipeError, UsageError, UserError
from nnopt.optim import table

RECIPE = """
name = "tiny"
[data]
name = "digits"
[model]
hidden = [8]
[optimizer]
name = "momentum"
lr = 0.1
[train]
steps = 2
"""


def test_errors_is_a_leaf_that_every_layer_may_import():
    tree = ast.parse(Path(errors.__file__).read_text())
    imported = [
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    assert not [name for name in imported if name and name.startswith("nnopt")], imported
    for kind in (RecipeError, DataError, UsageError):
        assert issubclass(kind, UserError) and issubclass(kind, ValueError)
    assert nnopt.RecipeError is RecipeError and nnopt.UserError is UserError


def _one_line(capsys, command: str) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"nnopt {command}: error: "), lines
    return lines[0]


def test_a_bug_is_not_disguised_as_a_user_error(tmp_path, monkeypatch, capsys):
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE)

    def buggy_train(*args, **kwargs):
        raise ValueError("an internal bug")

    monkeypatch.setattr(nnopt.training, "train", buggy_train)
    status = main(["train", str(recipe), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    # A bug keeps its traceback and asks to be reported; it is not a one-line user error.
    assert status == 70
    assert "Traceback (most recent call last)" in err and "ValueError: an internal bug" in err
    assert "internal error: this is a bug" in err and "please report it" in err
    assert "nnopt train: error:" not in err
    with pytest.raises(ValueError, match="an internal bug"):  # --debug: the exception itself
        main(["--debug", "train", str(recipe), "--out", str(tmp_path / "run2")])


def test_an_optimizer_s_value_error_becomes_a_recipe_error_naming_the_field(
    tmp_path, monkeypatch, capsys
):
    class StricterSGD(nnopt.SGD):
        def validate_group(self, group):
            if group["momentum"] > 0.5:  # as a constructor does: a ValueError naming it
                raise ValueError(f"momentum must be in [0, 0.5), got {group['momentum']}")
            super().validate_group(group)

    row = table.row("momentum")
    monkeypatch.setitem(table.BY_NAME, "momentum", dataclasses.replace(row, cls=StricterSGD))
    with pytest.raises(RecipeError, match=r"^optimizer.momentum must be in \[0, 0.5\), got 0.9$"):
        make(optimizer={"name": "momentum", "lr": 0.1, "momentum": 0.9})
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE)
    assert main(["train", str(recipe), "--out", str(tmp_path / "run")]) == 2
    line = _one_line(capsys, "train")
    assert line.endswith("r.toml: optimizer.momentum must be in [0, 0.5), got 0.9"), line
    assert not (tmp_path / "run").exists()  # refused on load, before anything was written


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ("eps must be > 0 and finite, got 0", "optimizer.eps must be"),
        ("betas[1] must be in [0, 1), got 1.0", "optimizer.betas[1] must be"),
        ("weight_decay must be >= 0 and finite, got -1", "regularization.weight_decay must"),
        ("nesterov=True needs momentum > 0", "optimizer.nesterov=True needs"),
    ],
)
def test_optimizer_messages_name_the_recipe_field(message, field):
    assert make()._field_line(message).startswith(field)


def test_data_errors_are_user_errors(tmp_path, capsys):
    with pytest.raises(DataError, match="unknown data set 'nosuch'"):
        load_dataset("nosuch")
    with pytest.raises(FileNotFoundError, match="data file not found"):
        load_dataset(tmp_path / "missing.npz")
    (tmp_path / "broken.npz").write_bytes(b"not a zip archive")
    with pytest.raises(DataError, match=r"broken.npz: cannot be read as an .npz archive"):
        load_dataset(tmp_path / "broken.npz")
    (tmp_path / "latin1.csv").write_bytes("a,label\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="cannot be read as UTF-8 CSV text"):
        load_dataset(tmp_path / "latin1.csv", target="label")
    np.savez(tmp_path / "ok.npz", x=np.zeros((4, 2)), y=np.arange(4))
    for data, expected in [
        ('"nosuch"', "unknown data set 'nosuch'"),
        (repr(str(tmp_path / "broken.npz")), "cannot be read as an .npz archive"),
    ]:
        recipe = tmp_path / "r.toml"
        recipe.write_text(RECIPE.replace('"digits"', data))
        assert main(["train", str(recipe), "--out", str(tmp_path / "run")]) == 2
        assert expected in _one_line(capsys, "train")


def test_command_line_values_are_checked_at_the_boundary(tmp_path, capsys):
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE)
    out = str(tmp_path / "lr")
    for args, expected in [
        (["--min-lr", "1", "--max-lr", "0.1"], "need 0 < --min-lr < --max-lr, got 1 and 0.1"),
        (["--steps", "1"], "--steps must be >= 2, got 1"),
    ]:
        assert main(["lr-find", str(recipe), "--out", out, *args]) == 2
        assert expected in _one_line(capsys, "lr-find")
    assert not (tmp_path / "lr").exists()
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["train", str(recipe), "--out", str(blocker / "run")]) == 2
    assert "cannot use" in _one_line(capsys, "train")
    sharded = ["--set", "train.shard_state=true"]  # needs torchrun
    assert main(["train", str(recipe), "--out", str(tmp_path / "a"), *sharded]) == 2
    assert "torchrun" in _one_line(capsys, "train")


def test_an_optimizer_error_is_named_by_the_option_it_carries_in_the_section_that_set_it():
    """OptionError carries the option's name: the recipe names the field from it, not from
    the message's wording, and weight_decay is the [optimizer] field when it is set there."""
    from nnopt.optim.validation import OptionError, check_nonnegative

    with pytest.raises(OptionError) as caught:
        check_nonnegative("weight_decay", -1)
    assert caught.value.option == "weight_decay"
    assert "torch.optim: Invalid weight_decay value: -1" in str(caught.value)
    line = "weight_decay must be >= 0 and finite, got -1"
    decayed = make(optimizer={"name": "adamw", "lr": 0.1, "weight_decay": 0.05})
    assert decayed._field_line(line, "weight_decay").startswith("optimizer.weight_decay must")
    assert make()._field_line(line, "weight_decay").startswith("regularization.weight_decay")
    line = make()._field_line("a Tensor needs foreach=False", "betas[0]")
    assert line == "optimizer.betas[0]: a Tensor needs foreach=False"
