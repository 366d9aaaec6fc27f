"""timm (issue 10, point 5, case 4): timm's schedulers and EMA around nnopt optimizers.

A small conv net with batch norm trains with ``timm.scheduler.CosineLRScheduler`` (warmup,
then cosine, stepped per update) while ``ModelEmaV2`` and ``ModelEmaV3`` follow it. Final
parameters, batch-norm buffers, both EMAs and the lr trace are compared between torch.optim
and nnopt.

Why not a timm model (``timm.create_model("test_efficientnet", pretrained=False)`` builds
fine offline): in such nets some parameters have a gradient that is zero in exact arithmetic
(the bias of a batch norm whose output a conv feeds straight into the next batch norm), so
what they get is rounding noise, and Adam, Adagrad and RMSprop turn noise into full-size
steps: two correct optimizers that differ by one ulp end up 1e0 apart on those tensors
(measured: torch.optim.AdamW vs nnopt.AdamW, 6 steps). The net below has no such parameter.

timm imports torchvision at import time and PyPI's torchvision does not load with CPU torch:
``torchvision_stub`` explains how timm is imported without it.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from tests.clients.helpers import NAMES, make_optimizer, tensors_of
from tests.clients.torchvision_stub import import_timm

if importlib.util.find_spec("timm") is None:
    pytest.skip("timm is not installed (make test-clients installs it)", allow_module_level=True)
timm = import_timm()

STEPS = 6


def _net() -> torch.nn.Module:
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


def _run(lib: str, name: str):
    torch.manual_seed(0)
    model = _net()
    opt = make_optimizer(lib, name, model.parameters())
    sched = timm.scheduler.CosineLRScheduler(
        opt, t_initial=STEPS, lr_min=1e-5, warmup_t=2, warmup_lr_init=1e-4, t_in_epochs=False
    )
    ema2 = timm.utils.ModelEmaV2(model, decay=0.8)
    ema3 = timm.utils.ModelEmaV3(model, decay=0.8, use_warmup=True)
    g = torch.Generator().manual_seed(1)
    lrs = []
    for step in range(STEPS):
        x, y = torch.randn(8, 3, 16, 16, generator=g), torch.randint(0, 10, (8,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step_update(num_updates=step + 1)
        lrs.append(opt.param_groups[0]["lr"])
        ema2.update(model)
        ema3.update(model, step=step)
    return {
        "params": tensors_of(model),
        "buffers": tensors_of(dict(model.named_buffers())),
        "ema2": tensors_of(ema2.module.state_dict()),
        "ema3": tensors_of(ema3.module.state_dict()),
        "lrs": lrs,
    }


@pytest.mark.parametrize("name", NAMES)
def test_cosine_scheduler_and_model_ema(name, record):
    """Repro 4: timm CosineLRScheduler + ModelEmaV2 / ModelEmaV3 on a timm model."""
    ref, got = _run("torch", name), _run("nnopt", name)
    assert got["lrs"] == ref["lrs"]
    record.close("final params", ref["params"], got["params"])
    record.close("batch-norm buffers", ref["buffers"], got["buffers"])
    record.close("ModelEmaV2 weights", ref["ema2"], got["ema2"])
    record.close("ModelEmaV3 weights", ref["ema3"], got["ema3"])
