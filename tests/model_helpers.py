"""A tiny model trained on seeded batches, for the optimizers' drop-in behaviour tests.

Where torch.optim defines a behaviour, the tests run the torch optimizer through the same
story (these models and batches) and assert the same numbers.
"""

from __future__ import annotations

import pytest
import torch
from optim_cases import CASES
from optim_helpers import max_rel_diff
from torch import nn

FLAT_IDS = ["flat", "per-tensor"]


def tiny_model(seed: int = 0, dtype=torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).to(dtype)


def batch(step: int, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1000 + step)
    return torch.randn(16, 5, generator=gen, dtype=dtype), torch.randn(
        16, 3, generator=gen, dtype=dtype
    )


def loss_of(model: nn.Module, step: int) -> torch.Tensor:
    x, y = batch(step, next(model.parameters()).dtype)
    return ((model(x) - y) ** 2).mean()


def train(model, opt, steps, *, start=0, zero=None):
    """``steps`` ordinary steps; ``zero`` replaces opt.zero_grad() (e.g. model.zero_grad)."""
    for k in range(start, start + steps):
        (zero or opt.zero_grad)()
        loss_of(model, k).backward()
        opt.step()


def assert_models_close(a: nn.Module, b: nn.Module, tol: float = 1e-6) -> None:
    diff = max_rel_diff(list(a.parameters()), list(b.parameters()))
    assert diff < tol, f"max relative difference {diff:.3g}"


def assert_models_equal(a: nn.Module, b: nn.Module) -> None:
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


def twin_cases() -> list:
    """(nnopt class, kwargs, torch class, kwargs) for every row of the case table with a torch
    twin: the same call on both (the row's alias defaults and its case's lr)."""
    return [
        pytest.param(
            case.table_row.cls,
            kwargs := {**case.table_row.defaults, "lr": case.lr},
            case.twin,
            kwargs,
            id=case.row,
        )
        for case in CASES.values()
        # (torch's Muon takes matrices only: these tests' models have vectors)
        if case.twin is not None and not case.matrices
    ]
