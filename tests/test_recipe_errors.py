"""Recipe errors: one readable line per problem, naming the field and what is allowed."""

from __future__ import annotations

import pytest
from recipe_helpers import MINIMAL, make

from nnopt.optim import table
from nnopt.recipe import Recipe, RecipeError


def problems(text_or_dict: str | dict) -> str:
    """The RecipeError message a recipe (TOML text or dict) fails with."""
    with pytest.raises(RecipeError) as info:
        if isinstance(text_or_dict, str):
            Recipe.loads(text_or_dict)
        else:
            Recipe.from_dict(text_or_dict)
    return str(info.value)


# -- errors --------------------------------------------------------------------------------------


def test_missing_required():
    assert problems({"optimizer": {"name": "sgd", "lr": 1}}) == (
        "[data] table is required (with name or factory)"
    )
    assert problems({"data": {}, "optimizer": {"name": "sgd", "lr": 1}}).startswith(
        "data: give exactly one of data.name (a built-in set or a .npz/.csv file) and data.factory"
    )
    assert "optimizer.lr is required" in problems(
        {"data": {"name": "d"}, "optimizer": {"name": "sgd"}}
    )


@pytest.mark.parametrize(
    ("section", "values", "expected"),
    [
        ("optimizer", {"name": "sgd", "lr": -1}, "optimizer.lr must be > 0, got -1"),
        (
            "optimizer",
            {"name": "sgd", "lr": 0.1, "momentum": 1.0},
            "optimizer.momentum must be in [0, 1), got 1.0",
        ),
        (
            "optimizer",
            {"name": "adam", "lr": 0.1, "betas": [0.9, 1]},
            "optimizer.betas[1] must be in [0, 1), got 1",
        ),
        (
            "data",
            {"name": "d", "val_fraction": 1.5},
            "data.val_fraction must be in (0, 1), got 1.5",
        ),
        ("model", {"hidden": [64, 0]}, "model.hidden[1] must be >= 1, got 0"),
        ("model", {"dropout": 1}, "model.dropout must be in [0, 1), got 1"),
        (
            "schedule",
            {"kind": "exponential", "gamma": 1.5},
            "schedule.gamma must be in (0, 1], got 1.5",
        ),
        ("plateau", {"factor": 1.0}, "plateau.factor must be in (0, 1), got 1.0"),
        ("train", {"batch_size": 0}, "train.batch_size must be >= 1, got 0"),
        ("regularization", {"l2": -0.1}, "regularization.l2 must be >= 0, got -0.1"),
    ],
)
def test_bounds(section, values, expected):
    assert (
        problems(
            {"data": {"name": "d"}, "optimizer": {"name": "sgd", "lr": 0.1}} | {section: values}
        )
        == expected
    )


def test_wrong_types():
    text = problems(
        {
            "seed": True,
            "data": {"name": 3, "standardize": "yes", "options": {"bad": [1]}},
            "model": {"hidden": 64, "channels": 2.5},
            "optimizer": {"name": "sgd", "lr": "fast"},
            "train": {"steps": 1.5},
        }
    )
    lines = text.splitlines()
    assert "seed must be an integer, got true" in lines
    assert "data.name must be a string, got 3" in lines
    assert "data.standardize must be true or false, got 'yes'" in lines
    assert "data.options.bad must be a number, string or boolean, got list" in lines
    assert "model.hidden must be a list, got 64" in lines
    assert "model.channels must be an integer, got 2.5" in lines
    assert "optimizer.lr must be a number, got 'fast'" in lines
    assert "train.steps must be an integer, got 1.5" in lines


def test_non_finite_rejected():
    assert problems(MINIMAL.replace("lr = 0.1", "lr = inf")) == (
        "optimizer.lr must be a finite number, got inf"
    )


def test_choices():
    names = ", ".join(table.NAMES)  # every row, in the table's order
    assert names.startswith("sgd, momentum, nesterov, adagrad, rmsprop, rmsprop_torch, adam,")
    assert problems(MINIMAL.replace('"sgd"', '"adm"')) == (
        # (the table's names, in its order: each new row appends its own)
        f"optimizer.name must be one of {', '.join(table.NAMES)}; got 'adm'"
    )
    assert table.NAMES[:9] == (
        "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "rmsprop_torch", "adam", "adamw",
        "lion",
    )  # fmt: skip
    assert "model.activation must be one of relu, tanh, sigmoid, gelu" in problems(
        MINIMAL + '[model]\nactivation = "swish"\n'
    )


def test_unknown_keys():
    text = problems(MINIMAL + "[train]\nepoch = 3\n")
    assert text == (
        "train: unknown key 'epoch'; allowed: batch_size, checkpoint_every, compile, device, "
        "epochs, eval_every, loss, metric, mode, shard_state, steps, threads; "
        "did you mean 'epochs'?"
    )
    top = problems("colour = 1\n" + MINIMAL)
    assert top.startswith("recipe: unknown key 'colour'; allowed: data, model, name, optimizer")
    assert "[optim]" not in problems(MINIMAL + "[optim]\nx = 1\n")  # named as a key, not a table


def test_several_problems_one_line_each():
    text = problems(
        {"data": {"name": "d", "val_fraction": 0}, "optimizer": {"name": "sgd", "lr": 0}}
    )
    assert text.splitlines() == [
        "data.val_fraction must be in (0, 1), got 0",
        "optimizer.lr must be > 0, got 0",
    ]


@pytest.mark.parametrize(
    ("name", "option", "value", "applies"),
    [
        ("sgd", "betas", [0.9, 0.99], "adam, adamw, lion, ..."),
        ("adam", "momentum", 0.9, "sgd, momentum, nesterov, rmsprop, rmsprop_torch"),
        ("sgd", "eps", 1e-8, "adagrad, rmsprop, rmsprop_torch, adam, adamw, ..."),
        ("adam", "rho", 0.9, "rmsprop"),
        ("rmsprop", "initial_accumulator_value", 0.1, "adagrad"),
        ("adagrad", "amsgrad", False, "adam, adamw"),
    ],
)
def test_option_not_applying(name, option, value, applies):
    text = problems({"data": {"name": "d"}, "optimizer": {"name": name, "lr": 0.1, option: value}})
    # "...": the rows appended after the seed's (each new optimizer adds its own name)
    listed = ", ".join(table.applies_to()[option])
    assert listed.startswith(applies.removesuffix("..."))
    assert (
        text == f"optimizer.{option} does not apply to optimizer {name!r}; it applies to {listed}"
    )


def test_nesterov_needs_momentum():
    text = problems(
        {"data": {"name": "d"}, "optimizer": {"name": "nesterov", "lr": 0.1, "momentum": 0}}
    )
    assert text == "optimizer.momentum must be > 0 for optimizer 'nesterov', got 0"


def test_compact_storage_with_flat_true_is_a_recipe_error():
    # flat=True set by the recipe is asked when the recipe loads (compact storage refuses it),
    # not found when the optimizer is built for the run, as an internal error
    optimizer = {"name": "adam", "lr": 0.1, "flat": True, "state_dtype": "int8"}
    text = problems({"data": {"name": "d"}, "optimizer": optimizer})
    assert text == (
        "optimizer.flat: state_dtype='int8' with flat=True: compact state is stepped tensor "
        "by tensor; drop flat=True"
    )
    del optimizer["state_dtype"]
    Recipe.from_dict({"data": {"name": "d"}, "optimizer": optimizer})  # flat alone is fine


def test_betas_must_be_a_pair():
    text = problems(
        {"data": {"name": "d"}, "optimizer": {"name": "adam", "lr": 0.1, "betas": [0.9]}}
    )
    assert text == "optimizer.betas must be a pair (beta1, beta2), got (0.9,)"


def test_an_option_whose_range_is_the_optimizers():
    """alpha is RMSprop's decay in [0, 1) and AdEMAMix's weight >= 0; AdEMAMix has 3 betas."""
    ademamix = {"name": "ademamix", "lr": 1e-3, "alpha": 8.0, "betas": [0.9, 0.999, 0.9999]}
    assert Recipe.model_validate({"data": {"name": "d"}, "optimizer": ademamix})
    rmsprop = {"name": "rmsprop_torch", "lr": 1e-3, "alpha": 8.0}
    text = problems({"data": {"name": "d"}, "optimizer": rmsprop})
    assert text.startswith("optimizer.alpha must be in [0, 1), got 8.0")
    two = {"name": "ademamix", "lr": 1e-3, "betas": [0.9, 0.999]}
    text = problems({"data": {"name": "d"}, "optimizer": two})
    assert text.startswith("optimizer.betas must be three numbers (beta1, beta2, beta3)")


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ({"kind": "step"}, "schedule.step_size is required when schedule.kind = 'step'"),
        ({"kind": "exponential"}, "schedule.gamma is required when schedule.kind = 'exponential'"),
        (
            {"kind": "warmup_cosine"},
            "schedule.warmup_steps must be >= 1 when schedule.kind = 'warmup_cosine', got 0",
        ),
    ],
)
def test_schedule_needs(schedule, expected):
    assert (
        problems(
            {"data": {"name": "d"}, "optimizer": {"name": "sgd", "lr": 1}, "schedule": schedule}
        )
        == expected
    )


def test_epochs_and_steps_exclusive():
    text = problems(MINIMAL + "[train]\nepochs = 2\nsteps = 5\n")
    assert text.startswith("train.epochs and train.steps are both set; give one")
    assert make(train={"steps": 5}).train.epochs is None


def test_load_errors(tmp_path):
    with pytest.raises(RecipeError, match="^recipe file not found: .*nope.toml$"):
        Recipe.load(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text('[data]\nname = "d"\nlr = = 3\n')
    with pytest.raises(RecipeError) as info:
        Recipe.load(bad)
    assert str(info.value).startswith(f"{bad}: invalid TOML: ")
    assert "line 3" in str(info.value)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(MINIMAL.replace("0.1", "-1") + "[model]\nkind = 'rnn'\n")
    with pytest.raises(RecipeError) as info:
        Recipe.load(wrong)
    assert info.value.problems == [
        f"{wrong}: model.kind must be one of linear, mlp, cnn1d, transformer, resnet; got 'rnn'",
        f"{wrong}: optimizer.lr must be > 0, got -1",
    ]
    assert isinstance(info.value, ValueError)
