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
