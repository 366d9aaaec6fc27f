"""The one table of optimizers: every recipe name builds the class it names, with the class's
own defaults in every param group (the optax ``alias_test`` way: one row per optimizer)."""

from __future__ import annotations

import inspect
import re

import pytest
import torch
from optim_cases import CASES

from nnopt.optim import table
from nnopt.recipe import Recipe
from nnopt.recipe.schema import APPLIES_TO, OPTION_TYPES
from nnopt.training.build import build_optimizer


@pytest.mark.parametrize("name", table.NAMES)
def test_recipe_name_builds_its_class_with_class_defaults(name):
    recipe = Recipe.from_dict({"data": {"name": "digits"}, "optimizer": {"name": name, "lr": 0.05}})
    bias = not CASES[name].matrices  # (torch's Muon takes matrices only)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 3, bias=bias), torch.nn.ReLU(), torch.nn.Linear(3, 2, bias=bias)
    )
    opt = build_optimizer(recipe, model, total_steps=10)
    # The options the paper / torch give the row (its case says which), from the class signature.
    cls, expected = table.BY_NAME[name].cls, CASES[name].holds
    assert type(opt) is cls
    signature = inspect.signature(cls.__init__).parameters
    decay_group = next(g for g in opt.param_groups if g.get("name") == "decay")
    for key, value in expected.items():
        assert decay_group[key] == value, key
    for group in opt.param_groups:
        for key, parameter in signature.items():
            if key in ("self", "params", "lr", "flat") or key in ("weight_decay", "l1", "l2"):
                continue  # lr is the schedule's; regularization is per group (tested above)
            default = table.BY_NAME[name].defaults.get(key, parameter.default)
            if key == "rho":
                key = "alpha"  # the seed's name, stored under torch's
            assert group[key] == default, (name, key)


def test_every_option_has_a_recipe_type():
    assert set(APPLIES_TO) <= set(OPTION_TYPES)


def test_every_constructor_option_is_in_the_one_registry():
    """Every argument of every optimizer in the table is one registry entry: its check, its
    recipe type and range, and whether it is nnopt's own come from there."""
    from nnopt.optim import registry

    for row in table.ROWS:
        for name in inspect.signature(row.cls.__init__).parameters:
            if name not in ("self", "params"):
                assert name in registry.OPTIONS, f"{row.cls.__name__}({name}=) has no entry"
    assert set(table.class_options(table.BY_NAME["adam"].cls)) <= set(registry.RECIPE_OPTIONS)


@pytest.mark.parametrize(
    ("name", "bad", "words"),
    [
        ("momentum", 1.0, "in [0, 1)"),
        ("dampening", -0.1, ">= 0"),
        ("eps", 0.0, "> 0"),
        ("lr_decay", -1.0, ">= 0"),
        ("nesterov", 1, "bool"),
        ("betas", (0.9,), "a pair"),
    ],
)
def test_the_registry_checks_an_option_by_its_kind(name, bad, words):
    from nnopt.optim import registry
    from nnopt.optim.validation import OptionError

    with pytest.raises(OptionError, match=f"^{name}.*{re.escape(words)}") as caught:
        registry.check(name, bad)
    assert caught.value.option.startswith(name)
