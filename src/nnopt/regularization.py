"""Regularization: parameter groups that spare biases and norms, and the explicit loss penalty.

Weights (tensors with ``dim >= 2``: Linear, Conv and Embedding weights) are what L1, L2 and weight
decay are for. Biases, other 1-D tensors and normalization-layer parameters are left alone:
shrinking a LayerNorm gain or a bias toward 0 constrains the function without reducing its
capacity, and usually hurts (the convention of BERT, GPT-2 and timm).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["Penalty", "decay_split", "param_groups", "penalty", "torch_param_groups"]

_NORM_LAYERS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*, InstanceNorm*, SyncBatchNorm
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())


def _exclude_tuple(exclude: str | Iterable[str]) -> tuple[str, ...]:
    # A bare string would otherwise be read as a set of single characters.
    return (exclude,) if isinstance(exclude, str) else tuple(exclude)


def decay_split(
    model: nn.Module, exclude: str | Iterable[str] = ("bias", "norm")
) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Trainable parameters split into (decay, no_decay), each in ``named_parameters`` order.

    decay: ``dim >= 2``, qualified name containing none of ``exclude``, not owned by a
    normalization layer. no_decay: every other trainable parameter. Frozen ones are in neither.
    """
    exclude = _exclude_tuple(exclude)
    norm_params = {
        id(p)
        for module in model.modules()
        if isinstance(module, _NORM_LAYERS)
        for p in module.parameters(recurse=False)
    }
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_weight = p.dim() >= 2 and id(p) not in norm_params
        if is_weight and not any(word in name for word in exclude):
            decay.append(p)
        else:
            no_decay.append(p)
    return decay, no_decay


def _check_strengths(**values: float) -> None:
    for name, value in values.items():
        if not value >= 0:  # also rejects NaN
            raise ValueError(f"{name} must be >= 0, got {value!r}")


def param_groups(
    model: nn.Module,
    l1: float = 0.0,
    l2: float = 0.0,
    weight_decay: float | None = None,
    exclude: str | Iterable[str] = ("bias", "norm"),
) -> list[dict[str, Any]]:
    """Parameter groups for nnopt optimizers: "decay" gets the strengths, "no_decay" gets zeros.

    ``l1`` is the proximal L1, ``l2`` coupled L2 and ``weight_decay`` decoupled decay
    (``decoupled_weight_decay=True`` in the group); ``weight_decay=None`` leaves the decay
    group at the optimizer's own default (AdamW's 1e-2). Each group has keys ``params, l1,
    l2, name`` (and the decay keys); empty groups are omitted. Pass the result to any nnopt
    optimizer (``nnopt.AdamW(param_groups(model, weight_decay=0.01))``). torch optimizers
    would silently ignore ``l1``/``l2``: use ``torch_param_groups`` for them.
    """
    _check_strengths(l1=l1, l2=l2, weight_decay=weight_decay or 0.0)
    decay, no_decay = decay_split(model, exclude)
    decayed: dict[str, Any] = {"params": decay, "l1": l1, "l2": l2, "name": "decay"}
    if weight_decay is not None:
        decayed |= {"weight_decay": weight_decay, "decoupled_weight_decay": True}
    groups = [
        decayed,
        {"params": no_decay, "l1": 0.0, "l2": 0.0, "weight_decay": 0.0, "name": "no_decay"},
    ]
    return [group for group in groups if group["params"]]


def torch_param_groups(
    model: nn.Module, weight_decay: float, exclude: str | Iterable[str] = ("bias", "norm")
) -> list[dict[str, Any]]:
    """The same split for ``torch.optim`` optimizers: keys ``params`` and ``weight_decay`` only.

    With ``torch.optim.AdamW`` the decay is decoupled; with ``torch.optim.SGD``/``Adam`` torch's
    ``weight_decay`` is coupled L2 (added to the gradient).
    """
    _check_strengths(weight_decay=weight_decay)
    decay, no_decay = decay_split(model, exclude)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return [group for group in groups if group["params"]]


def penalty(
    model: nn.Module,
    l1: float = 0.0,
    l2: float = 0.0,
    exclude: str | Iterable[str] = ("bias", "norm"),
) -> torch.Tensor:
    """``l1 * sum |w| + l2 / 2 * sum w^2`` over the decay set of ``param_groups``; differentiable.

    Its gradient is ``l1 * sign(w) + l2 * w``. Add it to the loss when you want the penalty in
    the objective (to report it, or with an optimizer that has no ``l1``/``l2`` option).
    When it differs from the optimizer options of the same name:

    - plain SGD (with or without momentum): the loss-term L2 and the optimizer's ``l2`` give
      exactly the same update, since both add ``l2 * w`` to the gradient;
    - adaptive optimizers (AdaGrad, RMSProp, Adam): both the loss term and ``l2`` are coupled,
      the ``l2 * w`` gradient is divided by the adaptive denominator like the rest, so large
      weights with large gradients are barely regularized. ``weight_decay`` is decoupled
      (``w -= lr * weight_decay * w`` outside the adaptive step, AdamW, Loshchilov & Hutter 2019)
      and matches no loss term;
    - L1: the loss term's subgradient ``l1 * sign(w)`` makes weights oscillate around 0 but
      never reach it; the optimizer's proximal ``l1`` (soft-thresholding) gives exact zeros.
    """
    return Penalty.of(model, l1=l1, l2=l2, exclude=exclude)()


@dataclass(frozen=True)
class Penalty:
    """:func:`penalty` over a parameter list found once: a training loop calls it every step
    without walking the module tree again (the decay set does not change during a run)."""

    params: list[nn.Parameter]  # the decay set of param_groups
    l1: float = 0.0
    l2: float = 0.0

    @classmethod
    def of(
        cls,
        model: nn.Module,
        l1: float = 0.0,
        l2: float = 0.0,
        exclude: str | Iterable[str] = ("bias", "norm"),
    ) -> Penalty:
        _check_strengths(l1=l1, l2=l2)
        return cls(decay_split(model, exclude)[0], l1, l2)

    def __call__(self) -> torch.Tensor:
        decay, l1, l2 = self.params, self.l1, self.l2
        if not decay:
            return torch.zeros(())
        # Summed in float32 at least: bfloat16 weights (model.dtype) would round the sum to 8 bits.
        dtype = torch.promote_types(decay[0].dtype, torch.float32)
        total = torch.zeros((), dtype=dtype, device=decay[0].device)
        # Skip zero strengths: no work, and no zero-valued nodes in the autograd graph.
        if l1:
            total = total + l1 * torch.stack([p.to(dtype).abs().sum() for p in decay]).sum()
        if l2:
            total = (
                total + (l2 / 2) * torch.stack([p.to(dtype).square().sum() for p in decay]).sum()
            )
        return total
