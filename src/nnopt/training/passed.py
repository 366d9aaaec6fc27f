"""Recipes for objects passed from Python (``nnopt.train/compare/lr_find(model=, data=)``).

A recipe may come as a Recipe, a dict of its tables, TOML text or a file path. When the model
or the data is passed as an object, the recipe's [model] / [data] record that
(``usercode.PASSED``, so a resume asks for them again), keeping the fields that still apply.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeAlias

from nnopt.errors import RecipeError
from nnopt.recipe import Recipe
from nnopt.usercode import PASSED

# What nnopt.train, compare and lr_find take as a recipe: a Recipe, a dict of its tables, TOML
# text or the path of a .toml file.
RecipeLike: TypeAlias = Recipe | dict[str, Any] | str | Path


def as_recipe(
    recipe: RecipeLike, *, model_passed: bool = False, data_passed: bool = False
) -> Recipe:
    """A :class:`Recipe` from a Recipe, a dict of tables, TOML text or a file path; with
    objects passed from Python, its [model] / [data] record that (``usercode.PASSED``)."""
    if isinstance(recipe, Path) or (
        isinstance(recipe, str) and "\n" not in recipe and Path(recipe).suffix == ".toml"
    ):
        if not (model_passed or data_passed):
            return Recipe.load(recipe)
        recipe = Path(recipe).read_text()
    if not (model_passed or data_passed):
        if isinstance(recipe, str):
            return Recipe.loads(recipe)
        return Recipe.from_dict(recipe) if isinstance(recipe, dict) else recipe
    if isinstance(recipe, Recipe):
        tables = recipe.to_dict()
    elif isinstance(recipe, dict):
        tables = dict(recipe)
    else:
        try:
            tables = tomllib.loads(recipe)
        except tomllib.TOMLDecodeError as exc:
            raise RecipeError(f"the recipe is not valid TOML: {exc}") from exc
    if data_passed:
        kept = {k: v for k, v in tables.get("data", {}).items() if k not in DATA_SOURCE}
        tables["data"] = {**kept, "factory": PASSED}
    if model_passed:
        kept = {k: v for k, v in tables.get("model", {}).items() if k in _MODEL_KEPT}
        tables["model"] = {**kept, "factory": PASSED}
    return Recipe.from_dict(tables)


# What a recipe's [data] / [model] no longer mean when the object itself was passed: where
# the data comes from (every other [data] field still applies to the data passed), and all
# of [model] but its dtype (a passed model is neither built nor initialized, but converted).
DATA_SOURCE = ("name", "factory", "args", "options")
_MODEL_KEPT = ("dtype",)
