"""torch.compile (issue 10, point 5, case 6), for SGD, Adam, AdamW, Adagrad and RMSprop.

Three ways users compile, each run with torch.optim.X and nnopt.X (identical call):
``model``: ``torch.compile(model)``, eager step; ``step``: ``torch.compile(opt.step)``;
``train_step``: one compiled function doing forward, backward, step and zero_grad.
The compiled numbers are compared with torch.optim compiled the same way.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.clients.helpers import NAMES, make_optimizer, tensors_of

STEPS = 5


def _run(lib: str, name: str, mode: str):
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 4))
    opt = make_optimizer(lib, name, model.parameters())
    g = torch.Generator().manual_seed(1)
    batches = [
        (torch.randn(8, 16, generator=g), torch.randn(8, 4, generator=g)) for _ in range(STEPS)
    ]
    losses = []
    if mode == "train_step":

        @torch.compile
        def train_step(x, y):
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
            return loss

        losses = [train_step(x, y).item() for x, y in batches]
    else:
        forward = torch.compile(model) if mode == "model" else model
        step = torch.compile(opt.step) if mode == "step" else opt.step
        for x, y in batches:
            loss = nn.functional.mse_loss(forward(x), y)
            loss.backward()
            step()
            opt.zero_grad()
            losses.append(loss.item())
    return tensors_of(model), losses


@pytest.mark.parametrize("mode", ["model", "step", "train_step"])
@pytest.mark.parametrize("name", NAMES)
def test_compiled(name, mode, record):
    """Repro 6: torch.compile(model), torch.compile(opt.step), a compiled train step."""
    ref, ref_losses = _run("torch", name, mode)
    got, got_losses = _run("nnopt", name, mode)
    record.close("final params", ref, got)
    record.close("losses", ref_losses, got_losses)
