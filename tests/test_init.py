import math

import pytest
import torch
from torch import nn

from nnopt.init import InitDecision, format_decisions, initialize

WIDTH, DEPTH, BATCH = 256, 20, 512


def deep_mlp(activation: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(DEPTH):
        layers += [nn.Linear(WIDTH, WIDTH), activation()]
    return nn.Sequential(*layers)


def inputs() -> torch.Tensor:
    return torch.randn(BATCH, WIDTH, generator=torch.Generator().manual_seed(1))


# ---------------------------------------------------------------- why it matters


@torch.no_grad()
def test_relu_net_keeps_its_signal_with_he_and_loses_it_with_plain_xavier():
    x = inputs()
    model = deep_mlp(nn.ReLU)
    decisions = initialize(model, generator=torch.Generator().manual_seed(0))
    assert {d.scheme for d in decisions} == {"he"}
    ratio_he = (model(x).std() / x.std()).item()
    assert 0.5 < ratio_he < 2.0

    # The counterfactual: Glorot's gain-free Xavier (the Keras default), blind to the ReLU.
    g = torch.Generator().manual_seed(0)
    for layer in model:
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight, generator=g)
    ratio_xavier = (model(x).std() / x.std()).item()
    assert ratio_xavier < 0.01


@torch.no_grad()
def test_tanh_net_stays_healthy_between_vanishing_and_saturating():
    x = inputs()
    model = deep_mlp(nn.Tanh)
    decisions = initialize(model, generator=torch.Generator().manual_seed(0))
    assert {(d.scheme, d.gain) for d in decisions} == {("xavier", 5 / 3)}
    chosen = model(x)
    saturated = (chosen.abs() > 0.99).float().mean().item()
    assert 0.3 < chosen.abs().mean().item() < 0.8 and saturated < 0.05

    g = torch.Generator().manual_seed(0)
    linears = [layer for layer in model if isinstance(layer, nn.Linear)]
    # Gain 1 ignores tanh's squashing: the signal fades layer after layer.
    for layer in linears:
        nn.init.xavier_uniform_(layer.weight, generator=g)
    assert model(x).abs().mean().item() < 0.2
    # A fixed N(0, 1) init ignores the fan: every unit is pinned at +-1.
    for layer in linears:
        nn.init.normal_(layer.weight, generator=g)
    assert model(x).abs().mean().item() > 0.9


# ---------------------------------------------------------------- variance formulas


@pytest.mark.parametrize(
    "activation, scheme, distribution, expected_var",
    [
        (nn.ReLU(), "he", "normal", 2 / 1000),
        (nn.ReLU(), "he", "uniform", 2 / 1000),
        (nn.LeakyReLU(0.2), "he", "normal", 2 / (1 + 0.2**2) / 1000),
        (nn.Identity(), "xavier", "uniform", 2 / (1000 + 500)),
        (nn.Tanh(), "xavier", "normal", (5 / 3) ** 2 * 2 / (1000 + 500)),
    ],
)
def test_empirical_weight_variance_matches_formula(activation, scheme, distribution, expected_var):
    fan_out = 1000 if scheme == "he" else 500
    model = nn.Sequential(nn.Linear(1000, fan_out), activation)
    (d,) = initialize(model, distribution=distribution, generator=torch.Generator().manual_seed(0))
    assert d.scheme == scheme
    assert d.std**2 == pytest.approx(expected_var, rel=1e-12)
    assert model[0].weight.var().item() == pytest.approx(expected_var, rel=0.03)
    assert torch.all(model[0].bias == 0)


# ---------------------------------------------------------------- decisions


def test_decisions_for_mlp():
    model = nn.Sequential(
        nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.Tanh(), nn.Linear(16, 3)
    )
    got = initialize(model)
    assert got == [
        InitDecision("0", "Linear(64->32)", "ReLU", "he", math.sqrt(2), math.sqrt(2 / 64)),
        InitDecision("2", "Linear(32->16)", "Tanh", "xavier", 5 / 3, 5 / 3 * math.sqrt(2 / 48)),
        InitDecision("4", "Linear(16->3)", "linear", "xavier", 1.0, math.sqrt(2 / 19)),
    ]


def test_decisions_for_conv_net():
    model = nn.Sequential(
        nn.Conv1d(1, 25, 5),
        nn.LeakyReLU(0.2),
        nn.Dropout(0.1),
        nn.Conv1d(25, 10, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(10 * 32, 10),
    )
    got = initialize(model, distribution="normal")
    leaky = math.sqrt(2 / (1 + 0.2**2))
    assert [(d.layer, d.kind, d.activation, d.scheme) for d in got] == [
        ("0", "Conv1d(1->25, k=5)", "LeakyReLU(0.2)", "he"),
        ("3", "Conv1d(25->10, k=3)", "ReLU", "he"),
        ("6", "Linear(320->10)", "linear", "xavier"),
    ]
    assert [d.gain for d in got] == pytest.approx([leaky, math.sqrt(2), 1.0])
    assert [d.std for d in got] == pytest.approx(
        [leaky / math.sqrt(5), math.sqrt(2 / 75), math.sqrt(2 / 330)]
    )


def test_nested_blocks_and_transparent_layers():
    block = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
    model = nn.Sequential(block, nn.Sequential(nn.MaxPool2d(2), nn.GELU()), nn.Linear(8, 2))
    got = initialize(model)
    assert [(d.layer, d.kind, d.activation, d.scheme) for d in got] == [
        ("0.0", "Conv2d(3->8, k=3x3)", "GELU", "he"),
        ("2", "Linear(8->2)", "linear", "xavier"),
    ]


def test_forced_scheme_keeps_the_activation_gain():
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5), nn.Tanh())
    he = initialize(model, scheme="he")
    assert [(d.scheme, d.gain) for d in he] == [("he", math.sqrt(2)), ("he", 5 / 3)]
    assert he[1].std == pytest.approx(5 / 3 / math.sqrt(20))
    xavier = initialize(model, scheme="xavier")
    assert [d.scheme for d in xavier] == ["xavier", "xavier"]
    assert xavier[0].std == pytest.approx(math.sqrt(2) * math.sqrt(2 / 30))


def test_generator_makes_draws_reproducible():
    def weights(seed: int) -> torch.Tensor:
        model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
        initialize(model, generator=torch.Generator().manual_seed(seed))
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(weights(3), weights(3))
    assert not torch.equal(weights(3), weights(4))


def test_format_decisions_is_an_aligned_table():
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 3))
    lines = format_decisions(initialize(model)).splitlines()
    assert lines[0].split() == ["layer", "kind", "activation", "scheme", "gain", "std", "why"]
    assert lines[1].split()[:6] == ["0", "Linear(64->32)", "ReLU", "he", "1.414", "0.1768"]
    assert lines[1].endswith("auto: He, for the ReLU that follows")
    assert lines[2].endswith("auto: Xavier, no activation follows")
    assert len(lines) == 3
    assert lines[0].index("kind") == lines[1].index("Linear") == lines[2].index("Linear")


@pytest.mark.parametrize(
    "kwargs, allowed",
    [({"scheme": "kaiming"}, "auto, he, xavier"), ({"distribution": "gauss"}, "uniform, normal")],
)
def test_bad_options_list_allowed_values(kwargs, allowed):
    with pytest.raises(ValueError, match=allowed):
        initialize(nn.Linear(2, 2), **kwargs)
