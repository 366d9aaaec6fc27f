"""Model builders: parameter counts, shapes, dropout, activations, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nnopt.models import ACTIVATIONS, build_model, count_parameters


def test_cnn1d_matches_the_mnist1d_paper():
    model = build_model("cnn1d", 40, 10)
    assert count_parameters(model) == 5_210
    assert model(torch.randn(7, 40)).shape == (7, 10)
    assert not any(isinstance(m, nn.Dropout) for m in model)
    assert [type(m) for m in model][1:3] == [nn.Conv1d, nn.ReLU]


def test_cnn1d_options():
    model = build_model("cnn1d", 40, 3, channels=8, dropout=0.5, activation="gelu")
    assert isinstance(model[-2], nn.Dropout) and isinstance(model[-1], nn.Linear)
    assert sum(isinstance(m, nn.GELU) for m in model) == 3
    assert model(torch.randn(2, 40)).shape == (2, 3)
    assert build_model("cnn1d", 64, 10)(torch.randn(2, 64)).shape == (2, 10)


def test_linear_and_mlp_counts_and_shapes():
    linear = build_model("linear", 20, 1)
    assert isinstance(linear, nn.Linear) and count_parameters(linear) == 21
    model = build_model("mlp", 40, 10)
    assert count_parameters(model) == (40 * 128 + 128) + (128 * 64 + 64) + (64 * 10 + 10)
    assert model(torch.randn(5, 40)).shape == (5, 10)
    assert [type(m) for m in model] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    assert count_parameters(build_model("mlp", 4, 2, hidden=())) == 10


def test_mlp_dropout_only_when_asked():
    model = build_model("mlp", 8, 2, hidden=(16, 16), activation="tanh", dropout=0.25)
    kinds = [type(m) for m in model]
    assert kinds == [nn.Linear, nn.Tanh, nn.Dropout, nn.Linear, nn.Tanh, nn.Dropout, nn.Linear]
    assert model[2].p == 0.25


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_activation_builds(name):
    model = build_model("mlp", 3, 2, hidden=(4,), activation=name)
    assert isinstance(model[1], ACTIVATIONS[name])


def test_errors():
    with pytest.raises(ValueError, match="choose one of linear, mlp, cnn1d, transformer, resnet"):
        build_model("rnn", 4, 2)
    with pytest.raises(ValueError, match="choose one of relu, tanh, sigmoid"):
        build_model("mlp", 4, 2, activation="swish")
    with pytest.raises(ValueError, match="dropout"):
        build_model("mlp", 4, 2, dropout=1.0)
    with pytest.raises(ValueError, match="hidden"):
        build_model("mlp", 4, 2, hidden=(8, 0))
    with pytest.raises(ValueError, match="input features"):
        build_model("cnn1d", 2, 2)
    assert build_model("cnn1d", 3, 2)(torch.randn(1, 3)).shape == (1, 2)
