"""The options every nnopt optimizer shares with torch.optim, and what they mean here.

One place for: the torch options nnopt honours or refuses, how ``weight_decay`` splits into
coupled and decoupled terms, and the per-step hyperparameters of a group (:class:`Hyper`).

Regularization of one group, with torch's ``weight_decay`` (wd) and nnopt's extras::

    coupled   = l2 + (wd if not decoupled_weight_decay else 0)   g <- g + coupled * theta
    decoupled = wd if decoupled_weight_decay else 0              theta <- theta (1 - eta decoupled)
    l1                                                           proximal soft-threshold

so ``weight_decay`` means exactly what it means in torch for the class of that name (coupled
for SGD, Adam, Adagrad, RMSprop; decoupled for AdamW and ``Adam(decoupled_weight_decay=True)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from nnopt.optim import registry
from nnopt.optim.validation import check_tensor_option

# Options torch accepts that nnopt cannot honour: value that is refused -> why.
REFUSED = {
    "capturable": "nnopt steps read the step count on the host and cannot be captured in a "
    "CUDA graph; use torch.optim with capturable=True",
}


def scalar(value: Any) -> float:
    """A Python float from a number or a one-element Tensor (torch accepts Tensor lr/betas)."""
    if type(value) is float:  # the common case, first (this runs several times per step)
        return value
    return float(value.item()) if isinstance(value, Tensor) else float(value)


def check_options(group: dict[str, Any]) -> None:
    """Validate the options shared by every optimizer; refuse what nnopt cannot honour.

    Each mistake torch.optim also refuses raises torch's exception type with torch's words in
    the message (see ``validation``).
    """
    for name, why in REFUSED.items():
        if group.get(name):
            raise ValueError(f"{name}=True is not supported: {why}")
    for name in ("maximize", "foreach", "fused", "differentiable", "decoupled_weight_decay"):
        registry.check(name, group.get(name, registry.ABSENT[name]))
    if group.get("fused"):
        if group.get("differentiable"):
            raise RuntimeError(
                "fused=True cannot take gradients through the step; pass differentiable=True "
                "without fused (torch.optim: `fused` does not support `differentiable`)"
            )
        if group.get("foreach"):
            raise RuntimeError(
                "fused=True and foreach=True ask for two different kernels; pass one "
                "(torch.optim: `fused` and `foreach` cannot be `True` together)"
            )
    check_tensor_option("lr", group["lr"])
    registry.check("lr", group["lr"])
    for name in ("weight_decay", "l1", "l2"):
        registry.check(name, group.get(name, 0.0))
    for name in ("state_dtype", "param_update", "min_8bit_size"):
        registry.check(name, group.get(name, registry.ABSENT[name]))


def step_dtype() -> torch.dtype:
    """The dtype of per-tensor step counters: float32 (float64 under a float64 default), as
    torch; never the default dtype itself (bfloat16 stops counting at 256)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


@dataclass(frozen=True)
class Hyper:
    """What one group's update needs this step, beside the rule's own options.

    Options are floats, except with ``tensors`` (a differentiable step, or a step torch.compile
    traces), where an option given as a Tensor stays that Tensor: autograd reaches it, and a
    compiled step reads its current value rather than a number baked in at tracing.
    """

    lr: float | Tensor
    coupled: float | Tensor  # added to the gradient: g + coupled * theta
    decoupled: float | Tensor  # theta <- theta * (1 - lr * decoupled)
    l1: float
    maximize: bool
    tensors: bool = False

    @classmethod
    def of(cls, group: dict[str, Any], lr: float | Tensor, tensors: bool = False) -> Hyper:
        wd = group.get("weight_decay", 0.0)
        wd = wd if tensors and isinstance(wd, Tensor) else scalar(wd)
        decoupled = bool(group.get("decoupled_weight_decay", False))
        l2 = scalar(group.get("l2", 0.0))
        return cls(
            lr=lr,
            coupled=l2 if decoupled else (l2 + wd if l2 else wd),
            decoupled=wd if decoupled else 0.0,
            l1=scalar(group.get("l1", 0.0)),
            maximize=bool(group.get("maximize", False)),
            tensors=tensors,
        )

    def kernel_regularization(self) -> dict[str, Any]:
        """What every native kernel takes of the regularization (its ``l2``, ``weight_decay``
        and ``l1`` arguments)."""
        return {"l2": self.coupled, "weight_decay": self.decoupled, "l1": self.l1}

    def number(self, value: Any) -> float | Tensor:
        """An option of the rule (a beta) as the rule takes it: see the class docstring."""
        return value if self.tensors and isinstance(value, Tensor) else scalar(value)
