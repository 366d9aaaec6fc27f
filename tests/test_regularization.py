import pytest
import torch
from recipe_helpers import make
from torch import nn

from nnopt.regularization import decay_split, param_groups, penalty, torch_param_groups


class Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.conv = nn.Conv1d(4, 6, 3)
        self.bn = nn.BatchNorm1d(6)
        self.fc = nn.Linear(6, 5)
        self.ln = nn.LayerNorm(5)  # named without "norm": caught by its type
        self.head = nn.Linear(5, 2, bias=False)
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def names(model: nn.Module, params: list[torch.Tensor]) -> list[str]:
    lookup = {id(p): n for n, p in model.named_parameters()}
    return [lookup[id(p)] for p in params]


def test_grouping():
    model = Mixed()
    groups = param_groups(model, l1=1e-4, l2=1e-3, weight_decay=0.01)
    decay, no_decay = groups
    assert decay["name"] == "decay" and no_decay["name"] == "no_decay"
    assert names(model, decay["params"]) == [
        "embed.weight",
        "conv.weight",
        "fc.weight",
        "head.weight",
    ]
    assert names(model, no_decay["params"]) == [
        "conv.bias",
        "bn.weight",
        "bn.bias",
        "fc.bias",
        "ln.weight",
        "ln.bias",
    ]
    assert (decay["l1"], decay["l2"], decay["weight_decay"]) == (1e-4, 1e-3, 0.01)
    assert (no_decay["l1"], no_decay["l2"], no_decay["weight_decay"]) == (0.0, 0.0, 0.0)
    assert decay["decoupled_weight_decay"] is True  # the recipe's weight_decay is decoupled
    assert set(no_decay) == {"params", "l1", "l2", "weight_decay", "name"}
    # unset, the decay group keeps the optimizer's own default (AdamW's 1e-2)
    assert "weight_decay" not in param_groups(model)[0]


def test_exclude_by_name_and_empty_groups_omitted():
    model = Mixed()
    decay, _ = decay_split(model, exclude=("bias", "norm", "embed"))
    assert "embed.weight" not in names(model, decay)
    decay, _ = decay_split(model, exclude="head")  # a bare string is one pattern
    assert "head.weight" not in names(model, decay) and "fc.weight" in names(model, decay)
    only_biases = nn.Linear(3, 1)
    only_biases.weight.requires_grad_(False)
    groups = param_groups(only_biases, l2=0.1)
    assert [g["name"] for g in groups] == ["no_decay"]


def test_penalty_matches_hand_computation():
    torch.manual_seed(0)
    model = Mixed()
    ws = [model.embed.weight, model.conv.weight, model.fc.weight, model.head.weight]
    l1, l2 = 0.03, 0.2
    expected = l1 * sum(w.abs().sum() for w in ws) + l2 / 2 * sum((w**2).sum() for w in ws)
    assert penalty(model, l1=l1, l2=l2).item() == pytest.approx(expected.item(), rel=1e-6)
    assert penalty(model).item() == 0.0


def test_penalty_gradient():
    torch.manual_seed(0)
    model = Mixed()
    l1, l2 = 0.03, 0.2
    penalty(model, l1=l1, l2=l2).backward()
    for w in (model.embed.weight, model.conv.weight, model.fc.weight, model.head.weight):
        torch.testing.assert_close(w.grad, l1 * torch.sign(w.detach()) + l2 * w.detach())
    assert model.fc.bias.grad is None and model.ln.weight.grad is None


def test_torch_param_groups_with_adamw():
    torch.manual_seed(0)
    model = Mixed()
    groups = torch_param_groups(model, weight_decay=0.1)
    assert [set(g) for g in groups] == [{"params", "weight_decay"}] * 2
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(groups, lr=0.5)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # zero gradients isolate the decoupled decay
    opt.step()
    after = dict(model.named_parameters())
    torch.testing.assert_close(after["fc.weight"], before["fc.weight"] * (1 - 0.5 * 0.1))
    torch.testing.assert_close(after["ln.weight"], before["ln.weight"])
    torch.testing.assert_close(after["fc.bias"], before["fc.bias"])


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda m: param_groups(m, l1=-1.0), "l1"),
        (lambda m: param_groups(m, l2=float("nan")), "l2"),
        (lambda m: param_groups(m, weight_decay=-0.1), "weight_decay"),
        (lambda m: torch_param_groups(m, weight_decay=-0.1), "weight_decay"),
        (lambda m: penalty(m, l2=-1.0), "l2"),
    ],
)
def test_negative_strengths_rejected(call, name):
    with pytest.raises(ValueError, match=rf"^{name} must be >= 0"):
        call(nn.Linear(2, 2))


def test_a_run_adds_the_penalty_of_the_parameters_resolved_once():
    from nnopt.training import train
    from nnopt.training.build import build_run

    model = {"kind": "mlp", "hidden": [8]}
    train_ = {"steps": 20, "batch_size": 32, "eval_every": 20}
    in_loss = make(model=model, train=train_, regularization={"l2": 0.05, "in_loss": True})
    parts = build_run(in_loss)
    weights = [p for name, p in parts.model.named_parameters() if name.endswith("weight")]
    assert parts.penalty is not None and parts.penalty.params == weights
    assert parts.penalty().item() == pytest.approx(penalty(parts.model, l2=0.05).item(), rel=1e-6)
    assert build_run(make(model=model, train=train_)).penalty is None
    # Plain SGD: the loss term's l2 * w and the optimizer's l2 are the same update.
    in_step = make(model=model, train=train_, regularization={"l2": 0.05})
    a, b = train(in_loss).history[-1], train(in_step).history[-1]
    assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)
