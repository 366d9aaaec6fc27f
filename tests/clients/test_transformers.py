"""transformers (issue 10, point 5, case 2): ``Trainer(optimizers=(opt, scheduler))``.

A tiny GPT-2 built from ``GPT2Config`` (2 layers, 32 wide, vocabulary 100; nothing
downloaded) trains on random tokens twice: with ``torch.optim.X(...)`` and ``nnopt.X(...)``
handed to the Trainer with a linear warmup schedule. Trainer clips gradients
(max_grad_norm=1.0) before each step. Final parameters and logged losses are compared.

One slice is left out of the parameter comparison: the key part of each ``attn.c_attn.bias``.
Softmax is invariant to adding one constant to every score of a query, so the key bias has
a zero gradient in exact arithmetic and gets rounding noise, which Adam turns into full-size
steps (measured, AdamW: 3e-6 absolute on the key bias, 4e-9 on the query and value parts).
"""

from __future__ import annotations

import pytest
import torch

from tests.clients.helpers import make_optimizer, tensors_of

transformers = pytest.importorskip("transformers")

VOCAB, SEQ = 100, 16


class Tokens(torch.utils.data.Dataset):
    def __init__(self, n: int = 32, seed: int = 1) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, VOCAB, (n, SEQ), generator=g)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def _gpt2() -> torch.nn.Module:
    config = transformers.GPT2Config(
        vocab_size=VOCAB,
        n_positions=SEQ,
        n_embd=32,
        n_layer=2,
        n_head=2,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(config)


def _train(lib: str, name: str, out_dir) -> tuple[torch.nn.Module, list[float]]:
    model = _gpt2()
    opt = make_optimizer(lib, name, model.parameters(), lr=3e-3)
    sched = transformers.get_linear_schedule_with_warmup(opt, 2, 8)
    args = transformers.TrainingArguments(
        output_dir=str(out_dir),
        max_steps=8,
        per_device_train_batch_size=8,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
    )
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=Tokens(), optimizers=(opt, sched)
    )
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 8
    return model, losses


def _comparable(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters, each ``c_attn.bias`` without its key slice (see the module doc)."""
    out = tensors_of(model)
    width = model.config.n_embd
    for k, t in out.items():
        if k.endswith("attn.c_attn.bias"):
            out[k] = torch.cat([t[:width], t[2 * width :]])  # query and value parts
    return out


@pytest.mark.parametrize("name", ["AdamW", "Adam", "SGD"])
def test_trainer_tiny_gpt2(name, record, tmp_path):
    """Repro 2: transformers.Trainer with optimizers=(opt, get_linear_schedule_with_warmup)."""
    ref, ref_losses = _train("torch", name, tmp_path / "torch")
    got, got_losses = _train("nnopt", name, tmp_path / "nnopt")
    record.close("final params", _comparable(ref), _comparable(got))
    record.close("logged losses", ref_losses, got_losses)
