"""Recipes for the recipe tests: a minimal valid one, as TOML text and as a builder."""

from __future__ import annotations

from nnopt.recipe import Recipe

MINIMAL = """
[data]
name = "digits"

[optimizer]
name = "sgd"
lr = 0.1
"""


def make(**sections: dict) -> Recipe:
    """A minimal valid recipe with some sections replaced or added."""
    base: dict = {"data": {"name": "digits"}, "optimizer": {"name": "sgd", "lr": 0.1}}
    base.update(sections)
    return Recipe.from_dict(base)


def tiny_run(steps: int = 10, eval_every: int = 10, checkpoint_every: int | None = None) -> str:
    """A recipe file's text for a run of seconds (an 8-unit MLP on digits), for CLI tests."""
    every = f"checkpoint_every = {checkpoint_every}\n" if checkpoint_every else ""
    return f"""name = "tiny"
[data]
name = "digits"
[model]
kind = "mlp"
hidden = [8]
[optimizer]
name = "adam"
lr = 0.01
[train]
steps = {steps}
batch_size = 32
eval_every = {eval_every}
{every}"""
