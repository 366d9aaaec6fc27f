"""Xavier and He initialization, chosen per layer from the activation that follows it.

Why per layer: the variance of a layer's output is ``fan * Var(w) * E[x^2]``; keeping it constant
through depth needs ``Var(w) = gain^2 / fan`` with a gain that undoes what the activation does to
the second moment. ReLU halves it (gain ``sqrt(2)``, He et al. 2015); tanh is close to the identity
near 0 (Xavier, Glorot & Bengio 2010, with torch's gain 5/3). Get it wrong and a 20-layer ReLU net
with gain-1 Xavier shrinks its signal ~1000x (see ``tests/test_init.py``).

- He: ``std = gain / sqrt(fan_in)`` (``kaiming_*_``, ``mode='fan_in'``);
- Xavier: ``std = gain * sqrt(2 / (fan_in + fan_out))`` (``xavier_*_``);
- uniform draws use ``U(-sqrt(3) std, sqrt(3) std)``, which has the same std.

The draws themselves are ``torch.nn.init``'s; this module only decides scheme and gain.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["InitDecision", "format_decisions", "initialize"]

SCHEMES = ("auto", "he", "xavier")
DISTRIBUTIONS = ("uniform", "normal")

_WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
# ReLU-like: zero (or nearly) for negative inputs, identity-like for positive ones.
_RELU_LIKE = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.ELU, nn.Mish)
# Layers between a weight layer and its activation that do not change the choice.
_TRANSPARENT = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.Flatten,
    nn.Identity,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
)


@dataclass(frozen=True)
class InitDecision:
    """What ``initialize`` did to one layer."""

    layer: str  # qualified name in the model, e.g. "net.0"
    kind: str  # e.g. "Linear(64->32)", "Conv1d(1->25, k=5)"
    activation: str  # e.g. "ReLU", "LeakyReLU(0.2)", "Tanh", "linear"
    scheme: str  # "he" or "xavier"
    gain: float
    std: float  # std of the distribution the weights were drawn from
    forced: bool = False  # the scheme was asked for (scheme="he"/"xavier"), not chosen

    @property
    def why(self) -> str:
        """The reason for the scheme, in a few words: "auto: He, for the ReLU that follows"."""
        name = {"he": "He", "xavier": "Xavier"}.get(self.scheme, self.scheme)
        if self.activation == "linear":
            after = "no activation follows"
        else:
            after = f"for the {self.activation} that follows"
        how = f"scheme={self.scheme!r} asked for" if self.forced else "auto"
        return f"{how}: {name}, {after}"


@dataclass(frozen=True)
class _Activation:
    label: str
    nonlinearity: str  # a name torch.nn.init.calculate_gain knows
    slope: float = 0.0

    @property
    def gain(self) -> float:
        return nn.init.calculate_gain(self.nonlinearity, self.slope)

    @property
    def auto_scheme(self) -> str:
        return "he" if self.nonlinearity in ("relu", "leaky_relu") else "xavier"


_LINEAR = _Activation("linear", "linear")


def _as_activation(module: nn.Module) -> _Activation | None:
    if isinstance(module, _RELU_LIKE):
        return _Activation(type(module).__name__, "relu")
    if isinstance(module, nn.LeakyReLU):
        return _Activation(
            f"LeakyReLU({module.negative_slope:g})", "leaky_relu", module.negative_slope
        )
    if isinstance(module, nn.Tanh):
        return _Activation("Tanh", "tanh")
    if isinstance(module, nn.Sigmoid):
        # calculate_gain('sigmoid') is 1: sigmoid is near-linear (slope 1/4) around 0.
        return _Activation("Sigmoid", "sigmoid")
    return None


def _following_activation(modules: Sequence[nn.Module], index: int) -> _Activation:
    """The activation after ``modules[index]`` in definition order, or linear if none."""
    for module in modules[index + 1 :]:
        if isinstance(module, _WEIGHT_LAYERS):
            return _LINEAR
        activation = _as_activation(module)
        if activation is not None:
            return activation
        # Containers are listed before their children: look inside them.
        if isinstance(module, _TRANSPARENT) or next(module.children(), None) is not None:
            continue
        return _LINEAR  # an unknown leaf (custom op, softmax...): assume no gain
    return _LINEAR


def _fans(weight: torch.Tensor) -> tuple[int, int]:
    # Same convention as torch.nn.init: weight is (out, in / groups, *kernel).
    receptive = math.prod(weight.shape[2:])
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def _kind(module: nn.Module) -> str:
    if isinstance(module, nn.Linear):
        return f"Linear({module.in_features}->{module.out_features})"
    kernel = "x".join(str(k) for k in module.kernel_size)
    return f"{type(module).__name__}({module.in_channels}->{module.out_channels}, k={kernel})"


def initialize(
    model: nn.Module,
    scheme: str = "auto",
    distribution: str = "uniform",
    generator: torch.Generator | None = None,
) -> list[InitDecision]:
    """Initialize every Linear / Conv1d/2d/3d of ``model`` for the activation that follows it.

    The activation is the next module in ``model.named_modules()`` order that is one, skipping
    dropout, normalization, flatten, pooling and identity layers; if the next weight layer (or an
    unknown module, or the end) comes first, the layer is treated as linear. Activations applied
    functionally in ``forward`` are invisible here, as is an execution order that differs from
    definition order.

    ``scheme="auto"``: He for ReLU, ReLU6, GELU, SiLU, ELU, Mish (gain ``sqrt(2)``) and
    LeakyReLU(a) (gain ``sqrt(2 / (1 + a^2))``); Xavier for Tanh (gain 5/3), Sigmoid and linear
    (gain 1). ``"he"`` or ``"xavier"`` force the scheme (the fan) for every layer, the gain still
    comes from the activation. Biases are zeroed. Returns one ``InitDecision`` per layer.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}; got {scheme!r}")
    if distribution not in DISTRIBUTIONS:
        raise ValueError(
            f"distribution must be one of {', '.join(DISTRIBUTIONS)}; got {distribution!r}"
        )
    named = list(model.named_modules())
    modules = [module for _, module in named]
    decisions = []
    for index, (name, module) in enumerate(named):
        if not isinstance(module, _WEIGHT_LAYERS):
            continue
        activation = _following_activation(modules, index)
        chosen = activation.auto_scheme if scheme == "auto" else scheme
        weight = module.weight
        fan_in, fan_out = _fans(weight)
        gain = activation.gain
        if chosen == "he":
            std = gain / math.sqrt(fan_in)
            draw = (
                nn.init.kaiming_uniform_ if distribution == "uniform" else nn.init.kaiming_normal_
            )
            draw(
                weight,
                a=activation.slope,
                mode="fan_in",
                nonlinearity=activation.nonlinearity,
                generator=generator,
            )
        else:
            std = gain * math.sqrt(2.0 / (fan_in + fan_out))
            draw = nn.init.xavier_uniform_ if distribution == "uniform" else nn.init.xavier_normal_
            draw(weight, gain=gain, generator=generator)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
        decision = InitDecision(
            name, _kind(module), activation.label, chosen, gain, std, forced=scheme != "auto"
        )
        decisions.append(decision)
    return decisions


def format_decisions(decisions: Sequence[InitDecision]) -> str:
    """An aligned text table of ``initialize``'s decisions, one row per layer, with the why."""
    header = ("layer", "kind", "activation", "scheme", "gain", "std", "why")
    rows = [header] + [
        (d.layer, d.kind, d.activation, d.scheme, f"{d.gain:.4g}", f"{d.std:.4g}", d.why)
        for d in decisions
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)
