"""nnopt.muon_for: one optimizer equal to the hand split users write today (torch's Muon on
the hidden matrices, torch's AdamW on the rest), resumable bit for bit, its split named."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

import nnopt
from nnopt.models import build_model
from nnopt.transformer import Transformer

LR, DECAY, MOMENTUM, BETAS = 0.02, 0.1, 0.9, (0.9, 0.95)


class Tiny(nn.Module):
    """An embedding, a norm, hidden matrices with biases and a head: every kind of parameter."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(11, 8)
        self.hidden = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8))
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.hidden(self.embed(ids))))


def loss(model: nn.Module, step: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(step)
    ids, target = (
        torch.randint(0, 11, (12,), generator=gen),
        torch.randint(0, 5, (12,), generator=gen),
    )
    return nn.functional.cross_entropy(model(ids), target)


def train(model, opts, steps, start=0):
    for k in range(start, start + steps):
        for opt in opts:
            opt.zero_grad()
        loss(model, k).backward()
        for opt in opts:
            opt.step()


def test_the_split_of_a_model():
    model = Tiny()
    choices = {c.name: (c.muon, c.why) for c in nnopt.muon_for(model).choices}
    assert choices == {
        "embed.weight": (False, "embedding"),
        "hidden.0.weight": (True, "hidden matrix"),
        "hidden.0.bias": (False, "bias"),
        "hidden.2.weight": (True, "hidden matrix"),
        "hidden.2.bias": (False, "bias"),
        "norm.weight": (False, "norm"),
        "norm.bias": (False, "norm"),
        "head.weight": (False, "output head (the last layer's weight)"),
        "head.bias": (False, "bias"),
    }


def test_the_split_of_the_built_in_models():
    cnn = build_model("cnn1d", 40, 10, channels=4, input_shape=(40,))
    muon = {c.name for c in nnopt.muon_for(cnn).choices if c.muon}
    convs = {n for n, p in cnn.named_parameters() if p.ndim == 3}
    assert muon == convs  # the conv kernels; the head Linear and the biases to AdamW
    lm = Transformer(vocab=20, context=8, width=16, layers=1, heads=2)
    choices = nnopt.muon_for(lm).choices
    # The head is the token embedding (tied): every matrix of the blocks is Muon's.
    assert {c.name for c in choices if c.muon} == {
        n for n, p in lm.named_parameters() if p.ndim == 2 and n.startswith("blocks.")
    }


@pytest.mark.parametrize("flat", [False, True])
def test_equals_the_hand_split_of_torch_muon_and_adamw(flat):
    ours, theirs = Tiny(), Tiny()
    opt = nnopt.muon_for(ours, LR, DECAY, MOMENTUM, adamw_betas=BETAS, flat=flat)
    names = {c.name for c in opt.choices if c.muon}
    matrices = [p for n, p in theirs.named_parameters() if n in names]
    rest = [p for n, p in theirs.named_parameters() if n not in names]
    hand = [
        torch.optim.Muon(matrices, LR, DECAY, MOMENTUM, adjust_lr_fn="match_rms_adamw"),
        torch.optim.AdamW(rest, LR, betas=BETAS, eps=1e-8, weight_decay=DECAY),
    ]
    for step in range(10):
        train(ours, [opt], 1, start=step)
        train(theirs, hand, 1, start=step)
        for (name, p), q in zip(ours.named_parameters(), theirs.parameters(), strict=True):
            diff = ((p - q).abs().max() / q.abs().max().clamp(min=1)).item()
            assert diff < 1e-5, (step, name, diff)
    state = opt.state_dict()["state"]
    # Group 0 is Muon's (the two hidden matrices), group 1 AdamW's: torch's keys in each.
    assert set(state[0]) == set(state[1]) == {"momentum_buffer"}
    assert all(set(state[i]) == {"step", "exp_avg", "exp_avg_sq"} for i in range(2, 9))


def test_a_conv_kernel_is_stepped_as_its_matrix():
    torch.manual_seed(0)
    conv = nn.Parameter(torch.randn(6, 3, 5))
    matrix = nn.Parameter(conv.detach().reshape(6, 15).clone())
    ours = nnopt.MuonAdamW([conv], LR, DECAY, MOMENTUM)
    theirs = torch.optim.Muon([matrix], LR, DECAY, MOMENTUM, adjust_lr_fn="match_rms_adamw")
    for _ in range(5):
        g = torch.randn(6, 3, 5)
        conv.grad, matrix.grad = g.clone(), g.reshape(6, 15).clone()
        ours.step()
        theirs.step()
    assert torch.equal(conv.detach().reshape(6, 15), matrix.detach())


@pytest.mark.parametrize("flat", [False, True])
def test_a_checkpoint_resumes_bit_for_bit(flat):
    ref = Tiny()
    train(ref, [nnopt.muon_for(ref, LR, flat=flat)], 6)
    model = Tiny()
    opt = nnopt.muon_for(model, LR, flat=flat)
    train(model, [opt], 3)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed = Tiny()
    resumed.load_state_dict(saved["model"])
    resumed_opt = nnopt.muon_for(resumed, lr=1.0, flat=flat)  # its options come from the dict
    resumed_opt.load_state_dict(saved["opt"])
    assert [g["use_muon"] for g in resumed_opt.param_groups] == [True, False]
    train(resumed, [resumed_opt], 3, start=3)
    for p, q in zip(resumed.parameters(), ref.parameters(), strict=True):
        assert torch.equal(p, q)


def test_a_muon_group_takes_matrices_only():
    with pytest.raises(ValueError, match="use_muon=True takes matrices"):
        nnopt.MuonAdamW([{"params": [nn.Parameter(torch.ones(3))], "use_muon": True}])
    with pytest.raises(ValueError, match="Muon only supports 2D parameters"):
        nnopt.Muon([nn.Parameter(torch.ones(3))])


def test_torchs_muon_on_a_model_with_vectors_is_one_line_naming_muon(tmp_path):
    """A recipe naming muon_torch on the MNIST-1D CNN (biases): the CLI's one line says to use
    'muon', not a traceback from inside the trainer."""
    import subprocess
    import sys

    recipe = tmp_path / "r.toml"
    recipe.write_text(
        'name = "r"\n[data]\nname = "digits"\n[model]\nkind = "mlp"\nhidden = [8]\n'
        '[optimizer]\nname = "muon_torch"\nlr = 0.01\n[train]\nsteps = 2\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "nnopt", "train", str(recipe), "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and "use optimizer.name = 'muon'" in lines[0]
