"""Model builders used by recipes: linear, MLP and the MNIST-1D 1-D CNN.

Every model is a plain ``nn.Sequential`` (or one ``nn.Linear``) with activations as modules,
so an initializer can walk the layers and see which nonlinearity follows each weight layer.
Models keep PyTorch's default initialization; ``nnopt.init`` applies the recipe's scheme.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from nnopt.errors import DataError

KINDS = ("linear", "mlp", "cnn1d", "transformer", "resnet")
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "silu": nn.SiLU,
}


def activation_module(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def _check_dropout(dropout: float) -> None:
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1); got {dropout}")


def mlp(
    input_dim: int,
    output_dim: int,
    hidden: Sequence[int] = (128, 64),
    activation: str = "relu",
    dropout: float = 0.0,
) -> nn.Sequential:
    """Linear -> activation [-> Dropout] per hidden layer, then a final Linear."""
    _check_dropout(dropout)
    if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
        raise ValueError(f"hidden layer sizes must be integers >= 1; got {list(hidden)}")
    layers: list[nn.Module] = []
    width = input_dim
    for size in hidden:
        layers += [nn.Linear(width, size), activation_module(activation)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, output_dim))
    return nn.Sequential(*layers)


def _conv_length(length: int, kernel: int, stride: int = 2, padding: int = 1) -> int:
    return (length + 2 * padding - kernel) // stride + 1


def cnn1d(
    input_dim: int,
    output_dim: int,
    channels: int = 25,
    activation: str = "relu",
    dropout: float = 0.0,
) -> nn.Sequential:
    """ConvBase of the MNIST-1D paper (Greydanus 2020, "Scaling down deep learning").

    Three stride-2 convolutions shrink the 40 samples to 19, 10 and then 5 positions, so with
    25 channels the head is Linear(125, 10): 150 + 1900 + 1900 + 1260 = 5,210 parameters.
    """
    _check_dropout(dropout)
    if channels < 1:
        raise ValueError(f"channels must be >= 1; got {channels}")
    length = _conv_length(_conv_length(_conv_length(input_dim, 5), 3), 3)
    if length < 1:
        raise DataError(f"cnn1d needs at least 3 input features; the data has {input_dim}")
    layers: list[nn.Module] = [
        nn.Unflatten(1, (1, input_dim)),  # (n, features) -> (n, 1 channel, length)
        nn.Conv1d(1, channels, 5, stride=2, padding=1),
        activation_module(activation),
        nn.Conv1d(channels, channels, 3, stride=2, padding=1),
        activation_module(activation),
        nn.Conv1d(channels, channels, 3, stride=2, padding=1),
        activation_module(activation),
        nn.Flatten(),
    ]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(channels * length, output_dim))
    return nn.Sequential(*layers)


def build_model(
    kind: str,
    input_dim: int,
    output_dim: int,
    *,
    hidden: Sequence[int] = (128, 64),
    activation: str = "relu",
    dropout: float = 0.0,
    channels: int = 25,
    width: int = 64,
    layers: int = 2,
    heads: int = 4,
    input_shape: tuple[int, ...] | None = None,
) -> nn.Module:
    """A model of ``kind`` mapping ``(n, input_dim)`` to ``(n, output_dim)``; a transformer
    maps ``(n, T <= input_dim)`` token ids to ``(n, T, output_dim)`` next-token logits."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {', '.join(KINDS)}")
    if input_dim < 1 or output_dim < 1:
        raise DataError(f"input_dim and output_dim must be >= 1; got {input_dim}, {output_dim}")
    activation_module(activation)  # validate even for kinds that do not use it
    if kind == "linear":
        return nn.Linear(input_dim, output_dim)
    if kind == "mlp":
        return mlp(input_dim, output_dim, hidden, activation, dropout)
    if kind == "resnet":
        from nnopt.resnet import ResNet

        return ResNet(input_shape or (input_dim,), output_dim, channels, layers)
    if kind == "transformer":
        from nnopt.transformer import Transformer

        return Transformer(output_dim, input_dim, width, layers, heads, dropout)
    return cnn1d(input_dim, output_dim, channels, activation, dropout)


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters (all of them, trainable or not)."""
    return sum(p.numel() for p in model.parameters())
