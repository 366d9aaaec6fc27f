"""More than one process through torchrun (gloo on CPU, 2 ranks): DDP and sharded state
match one process, checkpoints move between world sizes, bad setups fail clearly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import nnopt
from nnopt.recipe import Recipe
from nnopt.training import train
from tests.dist_helpers import run_ranks

# Real processes (torchrun, 2 ranks): ~75 s, so `make test-slow` (CI) runs them, not `make test`.
pytestmark = pytest.mark.slow

RECIPE = """
name = "ddp"
seed = 1
[data]
name = "digits"
[model]
kind = "mlp"
hidden = [32]
[optimizer]
name = "adam"
lr = 0.01
[regularization]
weight_decay = 0.01
[train]
batch_size = 64
steps = 30
eval_every = 10
"""

# Two ranks sum their half-batch gradients in another order than one process does, so
# parameters agree to float32 rounding accumulated over 30 Adam steps, not bitwise.
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


def torchrun(tmp_path: Path, *args: str, nproc: int = 2) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}"]
    command += ["--standalone", "-m", "nnopt", "train", *args, "--quiet"]
    return subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300
    )


def final_params(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]


@pytest.fixture(scope="module")
def recipe_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("recipes") / "ddp.toml"
    path.write_text(RECIPE)
    return path


@pytest.fixture(scope="module")
def single(recipe_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single")
    train(Recipe.load(recipe_file), out)
    return out


@pytest.mark.parametrize("shard", [False, True], ids=["ddp", "sharded-state"])
def test_two_ranks_match_one_process(recipe_file, single, tmp_path, shard):
    out = tmp_path / "run"
    args = [str(recipe_file), "--out", str(out)]
    if shard:
        args += ["--set", "train.shard_state=true"]
    done = torchrun(tmp_path, *args)
    assert done.returncode == 0, done.stderr[-2000:]
    expected = final_params(single)
    for name, value in final_params(out).items():
        torch.testing.assert_close(value, expected[name], **TOLERANCE)
    summary = (out / "summary.json").read_text()
    assert '"world_size": 2' in summary
    # Only rank 0 writes: one metrics file, one summary.
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.pt",
        "init.txt",
        "metrics.csv",
        "recipe.toml",
        "summary.json",
    ]


def test_a_two_rank_checkpoint_resumes_on_one_and_on_two(recipe_file, single, tmp_path):
    # A 2-rank run with sharded state stopped after 10 of the 30 steps...
    part = tmp_path / "part"
    short = tmp_path / "short.toml"
    short.write_text(RECIPE.replace("steps = 30", "steps = 10"))
    done = torchrun(tmp_path, str(short), "--out", str(part), "--set", "train.shard_state=true")
    assert done.returncode == 0, done.stderr[-2000:]
    # ...resumed to 30 steps with one process, and with two (plain DDP).
    for nproc in (1, 2):
        run_dir = tmp_path / f"resume{nproc}"
        run_dir.mkdir()
        (run_dir / "checkpoint.pt").write_bytes((part / "checkpoint.pt").read_bytes())
        (run_dir / "recipe.toml").write_text(short.read_text())
        # Extending the run is a change made on purpose, named as such.
        if nproc == 1:
            longer = Recipe.load(run_dir / "recipe.toml").with_overrides(["train.steps=30"])
            train(longer, run_dir, resume=True, changed=("train.steps",))
        else:
            done = torchrun(tmp_path, "--resume", str(run_dir), "--set", "train.steps=30")
            assert done.returncode == 0, done.stderr[-2000:]
        expected = final_params(single)
        for name, value in final_params(run_dir).items():
            torch.testing.assert_close(value, expected[name], **TOLERANCE)


def test_bad_setups_fail_with_one_clear_line(recipe_file, tmp_path):
    done = torchrun(tmp_path, str(recipe_file), "--set", "train.batch_size=63", "--out", "r63")
    assert done.returncode != 0
    # Each rank prints the one-line error (torchrun then adds its own failure report).
    assert "nnopt train: error: the global batch size 63 is not divisible by the world size 2" in (
        done.stderr
    )
    with pytest.raises(ValueError, match="torchrun"):
        train(Recipe.load(recipe_file).with_overrides(["train.shard_state=true"]))


def _user_ddp(rank: int, world: int) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = DistributedDataParallel(nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2)))
    opt = nnopt.AdamW(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(5)
    for _ in range(10):
        x, y = torch.randn(32, 6, generator=g), torch.randn(32, 2, generator=g)
        opt.zero_grad()
        nn.functional.mse_loss(model(x.chunk(world)[rank]), y.chunk(world)[rank]).backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


def test_nnopt_optimizers_work_under_a_users_own_ddp():
    ranks = run_ranks(_user_ddp, 2)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = nnopt.AdamW(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(5)
    for _ in range(10):
        x, y = torch.randn(32, 6, generator=g), torch.randn(32, 2, generator=g)
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    for params in ranks:
        for a, b in zip(params, model.parameters(), strict=True):
            torch.testing.assert_close(a, b.detach(), **TOLERANCE)


STREAMED = """
import numpy as np
import torch
from sklearn.datasets import load_digits


class Digits(torch.utils.data.Dataset):
    def __init__(self):
        d = load_digits()
        self.x, self.y, self.classes = d.data.astype(np.float32) / 16, d.target, list(range(10))
        self.targets = self.y  # (the validation split is then stratified, as in memory)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def digits():
    return Digits()
"""


def test_two_ranks_streaming_a_dataset_match_one_process_in_memory(tmp_path):
    (tmp_path / "streamdigits.py").write_text(STREAMED)
    text = RECIPE.replace('name = "digits"', 'factory = "streamdigits:digits"\nstandardize = false')
    (tmp_path / "r.toml").write_text(text + "\n")
    done = torchrun(tmp_path, "r.toml", "--out", "two", "--set", "data.loader=stream",
                    "--set", "data.workers=1")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    one = subprocess.run(
        [sys.executable, "-m", "nnopt", "train", "r.toml", "--out", "one", "--quiet",
         "--set", "data.loader=memory"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr[-2000:]
    expected = final_params(tmp_path / "one")
    for name, value in final_params(tmp_path / "two").items():
        torch.testing.assert_close(value, expected[name], **TOLERANCE)
