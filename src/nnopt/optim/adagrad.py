"""AdaGrad."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from nnopt.optim import kernels, rules
from nnopt.optim.base import Optimizer
from nnopt.optim.validation import check_nonnegative, check_positive


class AdaGrad(Optimizer):
    """AdaGrad (Duchi, Hazan & Singer 2011): per-coordinate rates from the sum of squares.

    G <- G + g^2;  theta <- theta - eta * g / (sqrt(G) + eps).  Equal to ``torch.optim.Adagrad``
    (lr_decay=0). Its ever-growing G is what RMSProp's moving average fixes.

    Args:
        params: parameters or param groups.
        lr: learning rate, or a schedule ``step -> lr``.
        eps: added to sqrt(G), > 0.
        initial_accumulator_value: starting value of G, >= 0.
        l1: proximal L1 with per-coordinate threshold ``l1 * eta / (sqrt(G) + eps)``.
        l2: coupled L2 (torch's weight_decay).
        weight_decay: decoupled decay.
        flat: keep everything in flat buffers (None: wherever safe).
    """

    uses_step = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: Any = 1e-2,
        eps: float = 1e-10,
        initial_accumulator_value: float = 0.0,
        *,
        l1: float = 0.0,
        l2: float = 0.0,
        weight_decay: float = 0.0,
        flat: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            eps=eps,
            initial_accumulator_value=initial_accumulator_value,
            l1=l1,
            l2=l2,
            weight_decay=weight_decay,
        )
        super().__init__(params, defaults, flat=flat)

    def validate_group(self, group: dict[str, Any]) -> None:
        check_positive("eps", group["eps"])
        check_nonnegative("initial_accumulator_value", group["initial_accumulator_value"])

    def state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("sum",)

    def initial_state(self, group: dict[str, Any], key: str) -> float:
        return group["initial_accumulator_value"]

    def update(self, group, param, grad, state, step, lr) -> rules.Divisor:
        return rules.adagrad_(param, grad, state["sum"], lr=lr, eps=group["eps"])

    def fused_update(self, group, param, grad, state, step, lr) -> bool:
        if (
            not kernels.use_torch_fused(self.kernels)
            or group["l1"]
            or group["weight_decay"]
            or param.is_complex()
        ):
            return self.native_update(group, param, grad, state, step, lr)
        torch._fused_adagrad_(
            [param],
            [grad],
            [state["sum"]],
            [torch.tensor(float(step), device=param.device)],
            lr=lr,
            lr_decay=0.0,
            weight_decay=group["l2"],
            eps=group["eps"],
            maximize=False,
        )
        return True

    def native_update(self, group, param, grad, state, step, lr) -> bool:
        """The whole update in nnopt's one-pass kernel, when the mode and tensors allow."""
        return kernels.use_native(self.kernels) and kernels.cpu.adagrad_(
            param,
            grad,
            state["sum"],
            lr=lr,
            eps=group["eps"],
            l2=group["l2"],
            weight_decay=group["weight_decay"],
            l1=group["l1"],
        )
