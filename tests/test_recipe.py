"""Recipe schema: defaults and TOML round trip, overrides, resolution against the data, and
the shipped examples. Errors are in test_recipe_errors.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from recipe_helpers import MINIMAL, make

from nnopt.recipe import Recipe, RecipeError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


# -- defaults and round trip -------------------------------------------------------------------


def test_defaults_are_resolved():
    r = Recipe.loads(MINIMAL)
    assert (r.name, r.seed) == ("run", 0)
    assert (r.data.val_fraction, r.data.standardize, r.data.options) == (0.2, True, {})
    m = r.model
    assert (m.kind, m.hidden, m.activation, m.dropout, m.channels) == (
        "mlp",
        [128, 64],
        "relu",
        0,
        25,
    )
    assert (m.init, m.init_distribution) == ("auto", "uniform")
    assert r.schedule.kind == "constant" and r.schedule.decay_steps is None
    assert r.plateau is None
    assert r.regularization.exclude == ["bias", "norm"] and not r.regularization.in_loss
    t = r.train
    assert (t.mode, t.batch_size, t.epochs, t.steps, t.eval_every) == (
        "minibatch",
        100,
        10,
        None,
        100,
    )
    assert (t.device, t.checkpoint_every, t.shard_state, t.loss) == ("cpu", None, False, "auto")


def test_recipe_is_frozen():
    r = Recipe.loads(MINIMAL)
    with pytest.raises(Exception, match="frozen"):
        r.optimizer.lr = 1.0  # type: ignore[misc]
    with pytest.raises(Exception, match="frozen"):
        r.seed = 2  # type: ignore[misc]


def test_to_dict_fills_defaults_and_omits_none():
    d = Recipe.loads(MINIMAL).to_dict()
    assert d["train"]["epochs"] == 10 and "steps" not in d["train"]
    assert "plateau" not in d and "decay_steps" not in d["schedule"]
    # [optimizer] keeps only what applies to sgd; momentum unset stays out (no TOML null)
    assert d["optimizer"] == {"name": "sgd", "lr": 0.1}


@pytest.mark.parametrize(
    "sections",
    [
        {},
        {"optimizer": {"name": "adam", "lr": 1e-3, "betas": [0.8, 0.99], "eps": 1e-7}},
        {"optimizer": {"name": "rmsprop", "lr": 1e-3, "centered": True, "momentum": 0.5}},
        {"optimizer": {"name": "adagrad", "lr": 0.01, "initial_accumulator_value": 0.1}},
        {"plateau": {"metric": "val_accuracy", "patience": 3}, "train": {"steps": 50}},
        {"data": {"name": "data/x y.csv", "options": {"n": 500, "noise": 0.1, "s": 'a"b'}}},
        {"schedule": {"kind": "step", "step_size": 10, "gamma": 0.5}},
    ],
)
def test_toml_round_trip(sections, tmp_path):
    r = make(**sections)
    assert Recipe.loads(r.to_toml()) == r
    r.save(tmp_path / "sub" / "recipe.toml")
    assert Recipe.load(tmp_path / "sub" / "recipe.toml") == r
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["recipe.toml"]  # no temp left


def test_to_toml_is_readable():
    text = make(model={"hidden": [64, 32]}, data={"name": "digits", "options": {"n": 5}}).to_toml()
    assert "hidden = [64, 32]" in text
    assert "[data.options]\nn = 5" in text
    assert text.startswith('name = "run"\nseed = 0\n\n[data]\n')


# -- overrides -----------------------------------------------------------------------------------


def test_overrides_of_each_type():
    r = Recipe.loads(MINIMAL).with_overrides(
        [
            "optimizer.name=adam",
            "optimizer.lr=0.03",
            "optimizer.betas=[0.9,0.99]",
            "optimizer.amsgrad=true",
            "train.epochs=5",
            "model.hidden=[64, 32]",
            "plateau.patience=3",
            "data.options.n=500",
            "data.options.kind=moons",
            "seed=3",
            'name="my run"',
            "data.name=data/train.csv",
        ]
    )
    assert r.optimizer.name == "adam" and r.optimizer.lr == 0.03
    assert r.optimizer.betas == (0.9, 0.99) and r.optimizer.amsgrad is True
    assert r.train.epochs == 5 and r.model.hidden == [64, 32]
    assert r.plateau is not None and r.plateau.patience == 3 and r.plateau.factor == 0.1
    assert r.data.options == {"n": 500, "kind": "moons"}
    assert (r.seed, r.name, r.data.name) == (3, "my run", "data/train.csv")


def test_overrides_return_new_recipe():
    r = Recipe.loads(MINIMAL)
    r2 = r.with_overrides(["optimizer.lr=0.5"])
    assert r.optimizer.lr == 0.1 and r2.optimizer.lr == 0.5
    assert r.with_overrides([]) is r


def test_text_fields_keep_the_text():
    r = Recipe.loads(MINIMAL).with_overrides(["data.name=1e3", "name=2024"])
    assert (r.data.name, r.name) == ("1e3", "2024")


def test_steps_replace_epochs_and_back():
    r = Recipe.loads(MINIMAL + "[train]\nepochs = 3\n")
    by_steps = r.with_overrides(["train.steps=40"])
    assert (by_steps.train.steps, by_steps.train.epochs) == (40, None)
    back = by_steps.with_overrides(["train.epochs=2"])
    assert (back.train.steps, back.train.epochs) == (None, 2)
    # a saved (resolved) recipe has epochs = 10 explicitly; steps still replaces it
    saved = Recipe.loads(Recipe.loads(MINIMAL).to_toml()).with_overrides(["train.steps=7"])
    assert (saved.train.steps, saved.train.epochs) == (7, None)
    with pytest.raises(RecipeError, match="both set"):
        r.with_overrides(["train.steps=4", "train.epochs=4"])


def test_changing_optimizer_drops_options_it_lacks():
    adam = Recipe.loads(Recipe.loads(MINIMAL).with_overrides(["optimizer.name=adam"]).to_toml())
    sgd = adam.with_overrides(["optimizer.name=sgd"])  # betas/amsgrad/... dropped, not an error
    assert sgd.optimizer.resolved()[1] == {}  # the class defaults, momentum 0 among them
    with pytest.raises(RecipeError, match="optimizer.betas does not apply to optimizer 'sgd'"):
        adam.with_overrides(["optimizer.name=sgd", "optimizer.betas=[0.5,0.5]"])


def test_remove_optional_table():
    r = Recipe.loads(MINIMAL).with_overrides(["plateau.patience=2"])
    assert r.plateau is not None
    assert r.with_overrides(["plateau=none"]).plateau is None


def test_override_errors():
    r = Recipe.loads(MINIMAL)
    with pytest.raises(RecipeError) as info:
        r.with_overrides(["optimizer.lrr=0.1"])
    assert str(info.value).startswith(
        "override 'optimizer.lrr=0.1': optimizer: unknown key 'lrr'; allowed: dampening, flat,"
    )
    assert str(info.value).endswith("did you mean 'lr'?")
    with pytest.raises(RecipeError, match=r"recipe: unknown key 'optimiser'; allowed: data, "):
        r.with_overrides(["optimiser.lr=1"])
    with pytest.raises(RecipeError, match=r"'optimizer.lr' has no '=': expected KEY=VALUE"):
        r.with_overrides(["optimizer.lr"])
    with pytest.raises(RecipeError, match="has no value"):
        r.with_overrides(["optimizer.lr="])
    with pytest.raises(RecipeError, match="optimizer.lr is a value, not a table"):
        r.with_overrides(["optimizer.lr.x=1"])
    with pytest.raises(RecipeError, match="^optimizer.lr must be > 0, got -1$"):
        r.with_overrides(["optimizer.lr=-1"])
    with pytest.raises(RecipeError, match="optimizer.lr must be a number, got 'fast'"):
        r.with_overrides(["optimizer.lr=fast"])


# -- resolution against the data -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("train", "n_train", "batch", "steps"),
    [
        ({"mode": "batch", "epochs": 3}, 1000, 1000, 3),
        ({"mode": "stochastic", "epochs": 2}, 50, 1, 100),
        ({"mode": "minibatch", "batch_size": 32, "epochs": 2}, 100, 32, 8),
        ({"mode": "minibatch", "batch_size": 25}, 100, 25, 40),  # default 10 epochs
        ({"mode": "stochastic", "steps": 7}, 50, 1, 7),
    ],
)
def test_total_steps_and_batch_size(train, n_train, batch, steps):
    r = make(train=train)
    assert r.resolved_batch_size(n_train) == batch
    assert r.total_steps(n_train) == steps


def test_batch_larger_than_data():
    with pytest.raises(RecipeError, match=r"train.batch_size \(100\) is larger than the training"):
        make().total_steps(40)


@pytest.mark.parametrize(
    ("optimizer", "expected"),
    [
        ({"name": "sgd", "lr": 0.1}, ("SGD", {})),
        ({"name": "momentum", "lr": 0.1}, ("SGD", {})),
        (
            {"name": "nesterov", "lr": 0.1, "momentum": 0.5, "flat": False},
            ("SGD", {"momentum": 0.5, "flat": False}),
        ),
        ({"name": "rmsprop", "lr": 0.1, "rho": 0.99}, ("RMSProp", {"rho": 0.99})),
        ({"name": "adam", "lr": 0.1, "eps": 1e-6}, ("Adam", {"eps": 1e-6})),
        (
            {"name": "adamw", "lr": 0.1, "amsgrad": True, "flat": True},
            ("AdamW", {"amsgrad": True, "flat": True}),
        ),
    ],
)
def test_resolved_options_are_only_what_the_recipe_sets(optimizer, expected):
    row, options = make(optimizer=optimizer).optimizer.resolved()
    assert (row.cls.__name__, options) == expected


# -- examples ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_examples_load(path):
    r = Recipe.load(path)
    assert r.name == path.stem
    assert path.read_text().startswith("#")  # a comment header says what it shows
    assert Recipe.loads(r.to_toml()) == r


def test_mnist1d_examples_differ_only_in_optimizer():
    recipes = [Recipe.load(p) for p in sorted(EXAMPLES.glob("mnist1d_cnn_*.toml"))]
    assert len(recipes) == 4
    for r in recipes:
        assert (r.data.name, r.model.kind, r.train.batch_size) == ("mnist1d", "cnn1d", 100)
        assert (r.train.steps, r.train.eval_every) == (6000, 500)
        assert r.model_dump(exclude={"name", "optimizer"}) == recipes[0].model_dump(
            exclude={"name", "optimizer"}
        )
    digits = Recipe.load(EXAMPLES / "digits_mlp.toml")
    assert (digits.optimizer.name, digits.optimizer.lr, digits.train.epochs) == ("adam", 1e-3, 20)


@pytest.mark.parametrize("path", sorted((EXAMPLES / "lowbit").glob("*.toml")), ids=lambda p: p.name)
def test_lowbit_examples_are_their_base_recipe_with_only_precision_changed(path):
    # examples/lowbit: the issue-26 quality study's variants (benchmarks/RESULTS.md); each is
    # mnist1d_best or charlm_adam with model.dtype and the optimizer's storage options alone.
    r = Recipe.load(path)
    assert r.name == path.stem
    assert path.read_text().startswith("#")
    base = Recipe.load(
        EXAMPLES / ("mnist1d_best.toml" if r.name.startswith("mnist1d") else "charlm_adam.toml")
    )
    precision = {"state_dtype", "param_update", "min_8bit_size"}
    assert r.model_dump(exclude={"name", "model", "optimizer"}) == base.model_dump(
        exclude={"name", "model", "optimizer"}
    )
    assert r.model.model_dump(exclude={"dtype"}) == base.model.model_dump(exclude={"dtype"})
    assert r.model.dtype == ("bfloat16" if "bf16" in r.name else "float32")
    assert r.optimizer.model_dump(exclude=precision) == base.optimizer.model_dump(exclude=precision)
