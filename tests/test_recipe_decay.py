"""``weight_decay`` under [optimizer] (issue 20, item 1): accepted with the meaning its class
gives it (decoupled for adamw, coupled L2 for the others, as torch.optim), refused in one
line beside a [regularization] decay, and a did-you-mean only offers the optimizer's own keys."""

from __future__ import annotations

import pytest
import torch
from recipe_helpers import MINIMAL
from test_recipe_errors import problems

from nnopt.optim import table
from nnopt.recipe import Recipe, RecipeError
from nnopt.training.build import build_optimizer


def _recipe(name: str, **regularization: float) -> Recipe:
    return Recipe.from_dict({
        "data": {"name": "digits"},
        "optimizer": {"name": name, "lr": 0.05, "weight_decay": 0.05},
        "regularization": regularization,
    })  # fmt: skip


@pytest.mark.parametrize("name", [row.name for row in table.ROWS if row.twin])
def test_optimizer_weight_decay_means_what_the_torch_class_means(name):
    model = torch.nn.Linear(4, 3, bias=False)  # its one weight is in the decay group
    twin = torch.nn.Linear(4, 3, bias=False)
    twin.load_state_dict(model.state_dict())
    ours = build_optimizer(_recipe(name), model, total_steps=10)
    row = table.BY_NAME[name]
    theirs = getattr(torch.optim, row.twin)(twin.parameters(), lr=0.05, weight_decay=0.05,
                                             **row.defaults)  # fmt: skip
    for _ in range(3):
        for net, opt in ((model, ours), (twin, theirs)):
            opt.zero_grad()
            net(torch.ones(2, 4)).square().sum().backward()
            opt.step()
    torch.testing.assert_close(model.weight, twin.weight)


def test_the_seeds_rmsprop_takes_it_coupled_and_exclude_still_applies():
    model = torch.nn.Linear(4, 3)
    groups = {g["name"]: g for g in build_optimizer(_recipe("rmsprop"), model, 10).param_groups}
    assert groups["decay"]["weight_decay"] == 0.05
    assert not groups["decay"]["decoupled_weight_decay"]
    assert groups["no_decay"]["weight_decay"] == 0.0  # the bias, as [regularization]'s


@pytest.mark.parametrize(
    ("name", "other", "expected"),
    [
        ("adamw", {"weight_decay": 0.01}, "optimizer.weight_decay and regularization."
         "weight_decay are both set; keep one: optimizer.weight_decay = 0.05 (decoupled for "
         "adamw, as in torch.optim) or regularization.weight_decay = 0.01 (decoupled decay, "
         "any optimizer)"),
        ("adam", {"l2": 0.001}, "optimizer.weight_decay and regularization.l2 are both set; "
         "keep one: optimizer.weight_decay = 0.05 (coupled L2 for adam, as in torch.optim) or "
         "regularization.l2 = 0.001 (coupled L2, any optimizer)"),
    ],
)  # fmt: skip
def test_both_decays_are_refused_in_one_line_saying_which_to_keep(name, other, expected):
    with pytest.raises(RecipeError) as info:
        _recipe(name, **other)
    assert info.value.problems == [expected]


def test_a_did_you_mean_offers_only_the_chosen_optimizers_keys():
    adamw = MINIMAL.replace('"sgd"', '"adamw"')
    # weight_decay used to be unknown, with "did you mean 'lr_decay'?" (adagrad's option)
    assert Recipe.loads(adamw + "weight_decay = 0.05\n").optimizer.weight_decay == 0.05
    assert problems(adamw + "weight_dekay = 0.05\n") == (
        "optimizer: unknown key 'weight_dekay'; allowed: amsgrad, betas, eps, flat, lr, "
        "min_8bit_size, name, param_update, state_dtype, weight_decay; did you mean "
        "'weight_decay'?"
    )
    assert problems(adamw + "momentun = 0.9\n").endswith("state_dtype, weight_decay")
    with pytest.raises(RecipeError) as info:
        Recipe.loads(adamw).with_overrides(["optimizer.momentun=0.9"])
    assert "did you mean" not in str(info.value) and "momentum" not in str(info.value)
