"""peft (issue 10, point 5, case 5): LoRA adapters trained by nnopt.

A small MLP gets LoRA adapters on its ``nn.Linear`` layers (``target_modules``); the base
weights are frozen. The optimizer is built the way peft's examples do,
``X(model.parameters())``: frozen parameters included, never given a gradient. Compared with
torch.optim: the adapter weights, the merged weights (``merge_and_unload``), and the adapter
saved by ``save_pretrained`` (safetensors) and loaded back with ``PeftModel.from_pretrained``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.clients.helpers import NAMES, make_optimizer, tensors_of

peft = pytest.importorskip("peft")


class Base(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(16, 32), nn.Linear(32, 32), nn.Linear(32, 4)

    def forward(self, x):
        return self.out(torch.tanh(self.fc2(torch.tanh(self.fc1(x)))))


def _base() -> Base:
    torch.manual_seed(0)
    return Base()


def _run(lib: str, name: str, tmp_path):
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["fc1", "fc2"], lora_dropout=0.0)
    torch.manual_seed(1)
    model = peft.get_peft_model(_base(), config)
    opt = make_optimizer(lib, name, model.parameters())
    g = torch.Generator().manual_seed(2)
    for _ in range(10):
        x, y = torch.randn(8, 16, generator=g), torch.randn(8, 4, generator=g)
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    lora = tensors_of({k: p for k, p in model.named_parameters() if p.requires_grad})
    frozen = tensors_of({k: p for k, p in model.named_parameters() if not p.requires_grad})
    probe = torch.randn(4, 16, generator=g)
    with torch.no_grad():
        out = model(probe)
    model.save_pretrained(tmp_path / lib)
    loaded = peft.PeftModel.from_pretrained(_base(), tmp_path / lib)
    with torch.no_grad():
        out_loaded = loaded(probe)
    merged = tensors_of(model.merge_and_unload().state_dict())
    return dict(lora=lora, frozen=frozen, out=out, out_loaded=out_loaded, merged=merged)


@pytest.mark.parametrize("name", NAMES)
def test_lora_adapters(name, record, tmp_path):
    """Repro 5: get_peft_model(LoraConfig(target_modules=[...])), X(model.parameters())."""
    ref, got = _run("torch", name, tmp_path), _run("nnopt", name, tmp_path)
    assert len(got["lora"]) == 4  # lora_A and lora_B of fc1 and fc2; nothing else trains
    record.bitwise("frozen base weights untouched", ref["frozen"], got["frozen"])
    record.close("LoRA weights", ref["lora"], got["lora"])
    record.close("merge_and_unload weights", ref["merged"], got["merged"])
    record.bitwise("nnopt: save_pretrained/from_pretrained", [got["out"]], [got["out_loaded"]])
    record.close("outputs after reload", [ref["out_loaded"]], [got["out_loaded"]])
