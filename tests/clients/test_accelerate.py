"""accelerate (issue 10, point 5, case 3): ``Accelerator().prepare(model, opt)``.

Train, ``save_model`` (safetensors: today the flat layout makes all parameters share one
storage, and the saved file keeps one tensor of four), then ``save_state`` / ``load_state``:
after loading, the same steps must give bitwise the numbers they gave before. Both runs,
torch.optim and nnopt, are compared.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.clients.helpers import NAMES, make_optimizer, tensors_of

accelerate = pytest.importorskip("accelerate")
safetensors_torch = pytest.importorskip("safetensors.torch")


def _batches(n: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 16, generator=g), torch.randn(8, 4, generator=g)) for _ in range(n)]


def _steps(acc, model, opt, batches) -> None:
    for x, y in batches:
        opt.zero_grad()
        acc.backward(nn.functional.mse_loss(model(x), y))
        opt.step()


def _run(lib: str, name: str, tmp_path) -> dict[str, dict[str, torch.Tensor]]:
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    acc = accelerate.Accelerator(cpu=True)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 4))
    opt = make_optimizer(lib, name, model.parameters())
    model, opt = acc.prepare(model, opt)
    _steps(acc, model, opt, _batches(6, seed=1))
    trained = tensors_of(model.state_dict())

    model_dir = tmp_path / lib / "model"
    acc.save_model(model, model_dir)
    saved = safetensors_torch.load_file(str(model_dir / "model.safetensors"))
    problems = []
    if sorted(saved) != sorted(trained):
        problems.append(f"save_model kept {sorted(saved)} of {sorted(trained)}")
    problems += [
        f"save_model: {k} differs from the model's"
        for k, t in trained.items()
        if k in saved and not torch.equal(saved[k].float(), t)
    ]

    state_dir = tmp_path / lib / "state"
    acc.save_state(str(state_dir))
    more = _batches(4, seed=2)
    _steps(acc, model, opt, more)
    first = tensors_of(model.state_dict())
    acc.load_state(str(state_dir))
    assert torch.equal(tensors_of(model.state_dict())["0.weight"], trained["0.weight"])
    _steps(acc, model, opt, more)
    again = tensors_of(model.state_dict())
    return {
        "trained": trained,
        "continued": first,
        "reloaded_continued": again,
        "problems": problems,
    }


@pytest.mark.parametrize("name", NAMES)
def test_prepare_save_model_save_load_state(name, record, tmp_path):
    """Repro 3: prepare(model, opt), train, save_model, save_state/load_state round trip."""
    ref = _run("torch", name, tmp_path)
    got = _run("nnopt", name, tmp_path)
    record.bitwise("nnopt: load_state then same steps", got["continued"], got["reloaded_continued"])
    record.close("params after 6 steps", ref["trained"], got["trained"])
    record.close(
        "params after load_state + 4", ref["reloaded_continued"], got["reloaded_continued"]
    )
    assert not ref["problems"]
    record.note("save_model file", "; ".join(got["problems"]) or "all tensors, equal")
    assert not got["problems"]
