"""The user's own model and data in a recipe (``model.factory``, ``data.factory``): through
`nnopt train`, `compare` and `lr-find`, with bitwise resume, and one line for every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nnopt.cli import main
from nnopt.recipe import Recipe
from nnopt.training import train

PROJECT = '''
import numpy as np
import torch
from torch import nn


class Tied(nn.Module):
    """An encoder and a decoder sharing one weight, as language models tie embeddings."""

    def __init__(self, input_dim, output_dim, width):
        super().__init__()
        self.encode = nn.Linear(input_dim, width)
        self.decode = nn.Linear(width, width)
        self.decode.weight = self.encode.weight if input_dim == width else self.decode.weight
        self.head = nn.Linear(width, output_dim)

    def forward(self, x):
        return self.head(torch.relu(self.decode(torch.relu(self.encode(x.flatten(1))))))


def model(input_shape, output_dim, width=16):
    return Tied(int(np.prod(input_shape)), output_dim, width)


def tied(input_dim, output_dim):
    return Tied(input_dim, output_dim, input_dim)


def blobs(n=300, seed=0, images=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 16)) + 4.0 * np.eye(3, 16)[y]
    return (x.reshape(n, 1, 4, 4) if images else x).astype(np.float32), y


def with_test():
    x, y = blobs()
    return torch.tensor(x[:200]), torch.tensor(y[:200]), x[200:], y[200:]


def as_dict():
    x, y = blobs()
    return {"x_train": x, "y_train": y, "task": "classification"}


class Pairs(torch.utils.data.Dataset):
    def __init__(self):
        self.x, self.y = blobs()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return torch.tensor(self.x[i]), int(self.y[i])


def dataset():
    return Pairs()


def not_a_model(input_shape, output_dim):
    return 42


def broken():
    raise ValueError("the data directory is empty")


NOT_CALLABLE = 3
'''

RECIPE = """
name = "mine"
seed = 1
[model]
factory = "{module}:model"
[model.args]
width = 8
[data]
factory = "{module}:blobs"
[optimizer]
name = "adam"
lr = 0.01
[train]
steps = 40
batch_size = 32
eval_every = 10
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's project: a module in the working directory, and the same code as a file."""
    (tmp_path / "myproject.py").write_text(PROJECT)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "code.py").write_text(PROJECT)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def recipe_text(module: str = "myproject", **replace: str) -> str:
    text = RECIPE.format(module=module)
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


def params_of(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize(
    "module, data", [("myproject", "blobs"), ("sub/code.py", "blobs"), ("myproject", "dataset")]
)
def test_a_factory_recipe_trains_and_resumes_bitwise(project, module, data):
    recipe = Recipe.loads(recipe_text(module, **{":blobs": f":{data}"}))
    whole = train(recipe, project / "whole")
    assert whole.summary["status"] == "finished"
    assert whole.history[-1]["val_accuracy"] > 0.7  # three blobs, chance is 1/3: it learned
    train(recipe, project / "cut", stop_after=15)
    resumed = train(recipe, project / "cut", resume=True)
    for a, b in zip(params_of(whole.model), params_of(resumed.model), strict=True):
        assert torch.equal(a, b)


def test_a_factory_model_trains_in_bfloat16_and_resumes_bitwise(project):
    """model.dtype converts the model the factory returned (its weights tied or not); a
    Dataset's examples are fed in bf16 (streamed: test_streamed.py)."""
    text = recipe_text(**{":blobs": ":dataset"})
    recipe = Recipe.loads(text).with_overrides(["model.dtype=bfloat16"])
    whole = train(recipe, project / "whole")
    assert {p.dtype for p in whole.model.parameters()} == {torch.bfloat16}
    assert whole.history[-1]["val_accuracy"] > 0.7
    train(recipe, project / "cut", stop_after=15)
    resumed = train(recipe, project / "cut", resume=True)
    for a, b in zip(params_of(whole.model), params_of(resumed.model), strict=True):
        assert torch.equal(a, b)


def test_train_compare_and_lr_find_take_a_factory_recipe(project, capsys):
    (project / "r.toml").write_text(recipe_text())
    assert main(["train", "r.toml", "--out", "run", "--quiet"]) == 0
    assert main(["compare", "r.toml", "--vary", "optimizer.name=sgd,adam", "--seeds", "2",
                 "--out", "cmp", "--quiet"]) == 0  # fmt: skip
    assert len(list((project / "cmp" / "runs").glob("*/seed-*/checkpoint.pt"))) == 4
    assert main(["lr-find", "r.toml", "--steps", "30", "--out", "lr"]) == 0
    assert (project / "lr").is_dir()


@pytest.mark.parametrize("factory", ["with_test", "as_dict", "dataset"])
def test_every_form_of_user_data(project, factory):
    recipe = Recipe.loads(recipe_text(**{":blobs": f":{factory}"}))
    result = train(recipe)
    assert result.summary["status"] == "finished"
    sizes = {"with_test": 100, "as_dict": 60, "dataset": 60}  # own test split, or 20% held out
    from nnopt.training.build import build_run

    parts = build_run(recipe)
    assert len(parts.dataset.x_test) == sizes[factory]
    assert parts.dataset.test_is_validation == (factory != "with_test")


def test_images_keep_their_shape_and_the_model_gets_it(project):
    source = 'factory = "myproject:blobs"'
    recipe = Recipe.loads(recipe_text(**{source: source + "\n[data.args]\nimages = true"}))
    from nnopt.training.build import build_run

    parts = build_run(recipe)
    assert parts.dataset.input_shape == (1, 4, 4)
    assert train(recipe).summary["status"] == "finished"


def test_a_users_tied_weights_stay_tied(project):
    text = recipe_text(**{":model": ":tied", "[model.args]\nwidth = 8\n": ""})
    result = train(Recipe.loads(text))
    model = result.model
    assert model.decode.weight is model.encode.weight  # torch's layout: nothing repacked
    assert model.decode.weight.data_ptr() == model.encode.weight.data_ptr()


BAD = [
    ({":model": ""}, "model.factory: 'myproject' must be 'module:function'"),
    ({"myproject:model": "nowhere:model"}, "model.factory: cannot import 'nowhere'"),
    ({"myproject:model": "sub/missing.py:model"}, "model.factory: no file sub/missing.py"),
    ({":model": ":absent"}, "model.factory: myproject has no 'absent'"),
    ({":model": ":NOT_CALLABLE"}, "model.factory: myproject:NOT_CALLABLE is a int, not a function"),
    ({":model": ":not_a_model", "width = 8": ""},
     "model.factory: myproject:not_a_model returned a int, expected"),
    ({"width = 8": "depth = 8"}, "model.factory: myproject:model does not take these args"),
    ({":blobs": ":broken"}, "data.factory: myproject:broken raised ValueError: the data directory"),
    ({"[model.args]": "hidden = [4]\n[model.args]"}, "model.hidden: applies to the built-in"),
    ({'factory = "myproject:blobs"': 'factory = "myproject:blobs"\nname = "digits"'},
     "data: give exactly one of data.name"),
]  # fmt: skip


@pytest.mark.parametrize("edit, expected", BAD)
def test_every_factory_mistake_is_one_line_naming_the_field(project, capsys, edit, expected):
    (project / "r.toml").write_text(recipe_text(**edit))
    assert main(["train", "r.toml", "--out", "run", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nnopt train: error: "), err
    assert expected in err[0], err[0]


def test_the_example_project_runs_as_the_readme_says(monkeypatch):
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    recipe = Recipe.load("examples/own_model/recipe.toml").with_overrides(["train.steps=30"])
    result = train(recipe)
    assert result.summary["status"] == "finished" and result.summary["parameters"] > 0


# --- the same from Python: your objects, no factory --------------------------------------


def _objects(seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, 300)
    x = torch.tensor(rng.normal(size=(300, 16)) + 4.0 * np.eye(3, 16)[y], dtype=torch.float32)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    return model, (x, torch.tensor(y))


PY_RECIPE = {
    "optimizer": {"name": "adam", "lr": 0.01},
    "train": {"steps": 40, "batch_size": 32, "eval_every": 10},
}


def test_train_takes_your_model_and_data_objects_and_resumes_bitwise(tmp_path):
    import nnopt

    model, data = _objects()
    start = params_of(model)
    whole = nnopt.train(PY_RECIPE, tmp_path / "whole", model=model, data=data)
    assert whole.model is model and whole.history[-1]["val_accuracy"] > 0.8
    assert not any(torch.equal(a, b) for a, b in zip(start, params_of(model), strict=True))
    fresh, data = _objects()  # the same starting weights: passed objects are not re-initialized
    nnopt.train(PY_RECIPE, tmp_path / "cut", model=fresh, data=data, stop_after=15)
    again, data = _objects()
    resumed = nnopt.train(
        tmp_path / "cut" / "recipe.toml", tmp_path / "cut", resume=True, model=again, data=data
    )
    for a, b in zip(params_of(whole.model), params_of(resumed.model), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(Exception, match="passed from Python .* pass it again to resume"):
        nnopt.train(tmp_path / "cut" / "recipe.toml", tmp_path / "cut", resume=True)


def test_the_built_in_resnet_takes_images_and_sequences_and_resumes_bitwise(project):
    source = 'factory = "myproject:blobs"'
    text = recipe_text(**{source: source + "\n[data.args]\nimages = true"})
    resnet = '[model]\nkind = "resnet"\nchannels = 4\nlayers = 2\n'
    text = text.replace('[model]\nfactory = "myproject:model"\n[model.args]\nwidth = 8\n', resnet)
    recipe = Recipe.loads(text)
    whole = train(recipe, project / "whole")
    assert whole.model.dims == 2 and whole.history[-1]["val_accuracy"] > 0.6
    train(recipe, project / "cut", stop_after=15)
    resumed = train(recipe, project / "cut", resume=True)
    ours, again = whole.model.state_dict(), resumed.model.state_dict()
    for name, value in ours.items():  # parameters and BatchNorm's running statistics
        assert torch.equal(value, again[name]), name
    flat = Recipe.loads(text.replace("\n[data.args]\nimages = true", ""))
    assert train(flat).model.dims == 1  # (examples, features): one channel, 1-D


def test_digits_as_images_train_the_built_in_2d_resnet(tmp_path):
    recipe = Recipe.loads(
        '[data]\nname = "digits"\n[data.options]\nimages = true\n'
        '[model]\nkind = "resnet"\nchannels = 8\nlayers = 2\n'
        '[optimizer]\nname = "adam"\nlr = 0.01\n[train]\nsteps = 60\nbatch_size = 64\n'
    )
    result = train(recipe)
    assert result.model.dims == 2 and result.history[-1]["val_accuracy"] > 0.5
    from nnopt.data import load_dataset

    assert load_dataset("digits", images=True).input_shape == (1, 8, 8)
    with pytest.raises(Exception, match="must be true or false"):
        load_dataset("digits", images=1)


def test_the_mnist1d_record_recipe_keeps_within_30k_parameters():
    from nnopt.models import count_parameters
    from nnopt.training.build import build_run

    root = Path(__file__).resolve().parents[1]
    parts = build_run(Recipe.load(root / "examples" / "mnist1d_record.toml"))
    assert count_parameters(parts.model) == 28_506 <= 30_000
    assert parts.model.dims == 1 and not parts.dataset.test_is_validation  # its own test split


def test_the_mnist1d_fast_recipe_trains_the_papers_5210_parameter_cnn():
    from nnopt.models import count_parameters
    from nnopt.training.build import build_run

    root = Path(__file__).resolve().parents[1]
    recipe = Recipe.load(root / "examples" / "mnist1d_fast.toml")
    assert recipe.model.kind == "cnn1d" and recipe.model.channels == 25
    parts = build_run(recipe)
    assert count_parameters(parts.model) == 5_210
    assert recipe.name == "mnist1d_fast" and recipe.data.name == "mnist1d"
