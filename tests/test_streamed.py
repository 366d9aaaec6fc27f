"""Datasets streamed by a DataLoader (``data.loader = "stream"``): the same numbers as in
memory, bitwise resume, the same batches whatever ``data.workers``, and one line per fault."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from nnopt.cli import main
from nnopt.errors import CheckpointError, RecipeError
from nnopt.recipe import Recipe
from nnopt.training import train

PROJECT = '''
import os
import numpy as np
import torch
from torch import nn

N = int(os.environ.get("STREAM_TEST_N", "240"))


class Blobs(torch.utils.data.Dataset):
    """Three Gaussian blobs; ``jitter`` adds noise drawn at read time (augmentation)."""

    def __init__(self, n=N, seed=0, jitter=0.0, broken_at=None):
        rng = np.random.default_rng(seed)
        self.y = rng.integers(0, 3, n)
        self.x = (rng.normal(size=(n, 8)) + 3.0 * np.eye(3, 8)[self.y]).astype(np.float32)
        self.jitter, self.broken_at = jitter, broken_at
        self.classes = ["a", "b", "c"]

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        if i == self.broken_at:
            raise OSError(f"cannot read shard {i}.bin")
        x = torch.from_numpy(self.x[i])
        if self.jitter:
            x = x + self.jitter * torch.randn(8)
        return x, int(self.y[i])


def data(jitter=0.0, broken_at=None):
    return {"train": Blobs(jitter=jitter, broken_at=broken_at), "test": Blobs(60, seed=1)}


def one(jitter=0.0):
    return Blobs(jitter=jitter)


def labelled():
    blobs = Blobs()
    blobs.targets = blobs.y  # torchvision's attribute: the split is then stratified
    return blobs


def net(input_shape, output_dim):
    return nn.Sequential(nn.Linear(input_shape[0], 16), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(16, output_dim))
'''

RECIPE = """
name = "streamed"
seed = 3
[model]
factory = "streamproject:net"
[data]
factory = "streamproject:data"
loader = "stream"
standardize = false
{extra}
[optimizer]
name = "adam"
lr = 0.01
[train]
steps = 30
batch_size = 32
eval_every = 10
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / "streamproject.py").write_text(PROJECT)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("streamproject", None)  # each test imports its own copy
    yield tmp_path
    sys.modules.pop("streamproject", None)


def recipe(extra: str = "", **replace: str) -> Recipe:
    text = RECIPE.format(extra=extra)
    for old, new in replace.items():
        text = text.replace(old, new)
    return Recipe.loads(text)


def params(result) -> list[torch.Tensor]:
    return [p.detach().clone() for p in result.model.parameters()]


def assert_same(a, b) -> None:
    for x, y in zip(params(a), params(b), strict=True):
        assert torch.equal(x, y)


def test_a_streamed_dataset_trains_like_the_same_data_in_memory(project):
    streamed = train(recipe())
    in_memory = train(recipe(**{'loader = "stream"': 'loader = "memory"'}))
    assert "streamed by a DataLoader" in describe(recipe())
    assert_same(streamed, in_memory)
    assert streamed.history == [
        {**row, "time": streamed.history[i]["time"]} for i, row in enumerate(in_memory.history)
    ]
    assert streamed.history[-1]["val_accuracy"] > 0.8


def describe(r: Recipe) -> str:
    from nnopt.data import load

    return load(r.data, r.seed).describe()


def test_a_streamed_run_resumes_bitwise_with_augmentation_and_any_workers(project):
    jitter = "[data.args]\njitter = 0.5"
    whole = train(recipe(jitter), project / "whole")
    workers = {"standardize = false": "standardize = false\nworkers = 2"}
    two_workers = train(recipe(jitter, **workers))
    assert_same(whole, two_workers)  # a random transform draws the same in a worker process
    train(recipe(jitter), project / "cut", stop_after=13)  # mid-epoch: 240 / 32 = 8 per epoch
    resumed = train(recipe(jitter), project / "cut", resume=True)
    assert_same(whole, resumed)
    payload = torch.load(project / "cut" / "checkpoint.pt", weights_only=True)
    assert payload["data"] == {"epoch": 3, "position": 6, "batches_per_epoch": 8, "examples": 240}


def test_a_streamed_bf16_run_is_the_in_memory_one_and_resumes_bitwise(project):
    """model.dtype = "bfloat16": the DataLoader's batches are cast to bf16 as the memory
    feed's are, so both train the same numbers; a resume is bitwise the whole run."""
    bf16 = {"[model]": '[model]\ndtype = "bfloat16"'}
    streamed = train(recipe(**bf16))
    assert {p.dtype for p in streamed.model.parameters()} == {torch.bfloat16}
    assert streamed.history[-1]["val_accuracy"] > 0.8
    assert_same(streamed, train(recipe(**bf16, **{'loader = "stream"': 'loader = "memory"'})))
    jitter = "[data.args]\njitter = 0.5"
    whole = train(recipe(jitter, **bf16), project / "whole")
    train(recipe(jitter, **bf16), project / "cut", stop_after=13)
    assert_same(whole, train(recipe(jitter, **bf16), project / "cut", resume=True))


def test_a_cut_resumed_on_changed_data_is_refused(project, monkeypatch):
    train(recipe(), project / "cut", stop_after=13)
    payload = torch.load(project / "cut" / "checkpoint.pt", weights_only=True)
    assert payload["data"]["position"] == 13 - 8
    monkeypatch.setenv("STREAM_TEST_N", "250")
    sys.modules.pop("streamproject", None)
    with pytest.raises(CheckpointError, match="started on 240 training examples .* now has 250"):
        train(recipe(), project / "cut", resume=True)


def test_one_dataset_is_split_and_carries_its_class_count(project):
    r = recipe(**{"streamproject:data": "streamproject:one"})
    from nnopt.data import load

    data = load(r.data, r.seed)
    assert (data.n_train, len(data.test), data.num_classes) == (192, 48, 3)
    assert data.test_is_validation and data.input_shape == (8,)
    result = train(r)
    assert result.summary["status"] == "finished"


def test_a_failing_example_in_a_worker_is_one_line(project, capsys):
    text = RECIPE.format(extra="workers = 1\n[data.args]\nbroken_at = 7")
    (project / "r.toml").write_text(text)
    assert main(["train", "r.toml", "--out", str(project / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "nnopt train: error: data.factory: reading example 7 of the Dataset failed "
        "(OSError: cannot read shard 7.bin)"
    ]


def test_lr_find_takes_a_streamed_dataset(project, capsys):
    (project / "r.toml").write_text(RECIPE.format(extra=""))
    code = main(["lr-find", "r.toml", "--steps", "20", "--out", str(project / "lr")])
    assert code in (0, 1) and (project / "lr" / "lr_find.json").is_file()


def test_a_classification_without_a_class_count_asks_for_it(project):
    from nnopt.data.streamed import streamed

    class Bare(torch.utils.data.Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, i):
            return torch.zeros(2), i % 2

    with pytest.raises(RecipeError, match="return a dict with 'num_classes'"):
        streamed("bare", Bare(), None, task="auto", num_classes=None, seed=0,
                 val_fraction=0.2, workers=0, pin_memory=False)  # fmt: skip
    made = streamed("bare", Bare(), None, task="auto", num_classes=2, seed=0,
                    val_fraction=0.2, workers=0, pin_memory=False)  # fmt: skip
    assert made.task == "classification" and made.output_dim == 2
    floats = streamed("r", [(np.zeros(2), np.ones(3, np.float32))] * 5, None, task="auto",
                      num_classes=None, seed=0, val_fraction=0.2, workers=0,
                      pin_memory=False)  # fmt: skip
    assert floats.task == "regression" and floats.output_dim == 3


def test_one_labelled_dataset_is_split_as_in_memory(project):
    r = recipe(**{"streamproject:data": "streamproject:labelled"})
    streamed = train(r)
    in_memory = train(r.with_overrides(["data.loader=memory"]))
    assert_same(streamed, in_memory)


def test_a_streamed_run_resumes_with_other_workers_to_the_same_numbers(project):
    whole = train(recipe("[data.args]\njitter = 0.5"))
    train(recipe("[data.args]\njitter = 0.5"), project / "cut", stop_after=11)
    more = recipe("workers = 2\n[data.args]\njitter = 0.5")
    assert_same(whole, train(more, project / "cut", resume=True))
