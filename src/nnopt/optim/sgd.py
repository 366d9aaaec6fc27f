"""Gradient descent: plain, heavy-ball momentum and Nesterov momentum."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from nnopt.optim import kernels, rules
from nnopt.optim.base import Optimizer
from nnopt.optim.validation import check_type, check_unit_interval


class SGD(Optimizer):
    """Gradient descent with optional momentum, as ``torch.optim.SGD`` (no dampening).

    theta <- theta - eta * g;  with momentum mu:  b <- mu * b + g,  theta <- theta - eta * b
    (Nesterov: theta <- theta - eta * (g + mu * b)). Batch, stochastic or mini-batch descent
    is a matter of how many samples the gradient was computed on, not of the optimizer.

    Args:
        params: parameters or param groups (each group may override any option).
        lr: learning rate, or a schedule ``step -> lr``.
        momentum: mu in [0, 1); 0 disables the momentum buffer.
        nesterov: Nesterov momentum (needs momentum > 0).
        l1: L1 strength, a proximal soft-threshold (exact zeros).
        l2: coupled L2, adds ``l2 * theta`` to the gradient (torch's weight_decay).
        weight_decay: decoupled decay, ``theta *= 1 - lr * weight_decay``.
        flat: keep parameters, gradients and state in flat buffers (None: wherever safe).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: Any,
        momentum: float = 0.0,
        nesterov: bool = False,
        *,
        l1: float = 0.0,
        l2: float = 0.0,
        weight_decay: float = 0.0,
        flat: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr, momentum=momentum, nesterov=nesterov, l1=l1, l2=l2, weight_decay=weight_decay
        )
        super().__init__(params, defaults, flat=flat)

    def validate_group(self, group: dict[str, Any]) -> None:
        check_unit_interval("momentum", group["momentum"])
        check_type("nesterov", group["nesterov"], (bool,))
        if group["nesterov"] and group["momentum"] == 0:
            raise ValueError("nesterov=True needs momentum > 0 (got momentum=0)")

    def state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("momentum_buffer",) if group["momentum"] > 0 else ()

    def update(self, group, param, grad, state, step, lr) -> rules.Divisor:
        if group["momentum"] > 0:
            return rules.momentum_(
                param,
                grad,
                state["momentum_buffer"],
                lr=lr,
                momentum=group["momentum"],
                nesterov=group["nesterov"],
            )
        return rules.sgd_(param, grad, lr=lr)

    def fused_update(self, group, param: Tensor, grad, state, step, lr) -> bool:
        # torch's fused SGD covers coupled L2 only; the zero-initialized buffer makes
        # is_first_step unnecessary (mu * 0 + g == g).
        if (
            not kernels.use_torch_fused(self.kernels)
            or group["l1"]
            or group["weight_decay"]
            or param.is_complex()
        ):
            return self.native_update(group, param, grad, state, step, lr)
        buffers = [state["momentum_buffer"]] if group["momentum"] > 0 else []
        torch._fused_sgd_(
            [param],
            [grad],
            buffers,
            weight_decay=group["l2"],
            momentum=group["momentum"],
            lr=lr,
            dampening=0.0,
            nesterov=group["nesterov"],
            maximize=False,
            is_first_step=False,
        )
        return True

    def native_update(self, group, param, grad, state, step, lr) -> bool:
        """The whole update in nnopt's one-pass kernel, when the mode and tensors allow."""
        return kernels.use_native(self.kernels) and kernels.cpu.sgd_(
            param,
            grad,
            state.get("momentum_buffer"),
            lr=lr,
            momentum=group["momentum"],
            nesterov=group["nesterov"],
            l2=group["l2"],
            weight_decay=group["weight_decay"],
            l1=group["l1"],
        )
