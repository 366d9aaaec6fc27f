"""Recipes: a training run described as data, loaded from TOML and validated.

>>> r = Recipe.loads('[data]\\nname = "digits"\\n[optimizer]\\nname = "adam"\\nlr = 1e-3')
>>> r.with_overrides(["optimizer.lr=0.01"]).optimizer.lr
0.01
"""

from nnopt.errors import RecipeError
from nnopt.recipe.core import Recipe

__all__ = ["Recipe", "RecipeError"]
