"""Gradient descent: plain, heavy-ball momentum and Nesterov momentum (torch.optim.SGD)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from nnopt.optim import kernels, rules
from nnopt.optim.base import Optimizer, constructor_options
from nnopt.optim.options import Hyper
from nnopt.optim.registry import check_all

_HALF = (torch.float16, torch.bfloat16)
_FULL = frozenset((torch.float32, torch.float64))


class SGD(Optimizer):
    """Gradient descent with optional momentum: ``torch.optim.SGD``, argument for argument.

    theta <- theta - eta * g;  with momentum mu and dampening tau:
    b <- g on the first step, then b <- mu * b + (1 - tau) * g;  theta <- theta - eta * b
    (Nesterov: theta <- theta - eta * (g + mu * b)). Batch, stochastic or mini-batch descent
    is a matter of how many samples the gradient was computed on, not of the optimizer.

    Args (torch's, same order and defaults):
        params: parameters or param groups (each group may override any option).
        lr: learning rate (float or Tensor), or an nnopt schedule ``step -> lr``.
        momentum: mu in [0, 1); 0 keeps no momentum buffer.
        dampening: tau >= 0: the share of each gradient left out of the buffer.
        weight_decay: coupled L2, adds ``weight_decay * theta`` to the gradient (torch's).
        nesterov: Nesterov momentum (needs momentum > 0 and dampening 0).
        maximize, foreach, differentiable, fused: torch's; ``foreach``/``fused`` are hints,
            nnopt picks its own kernels (each computes the same update).
    nnopt's extras (keyword-only, names torch does not use):
        decoupled_weight_decay: make ``weight_decay`` decoupled, ``theta *= 1 - lr * wd``.
        l1: L1 strength, a proximal soft-threshold (exact zeros).
        l2: coupled L2 on top of ``weight_decay`` (so coupled and decoupled can be combined).
        flat: keep the group's parameters, gradients and state in flat buffers.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: Any = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
        l1: float = 0.0,
        l2: float = 0.0,
        state_dtype: str | None = None,
        param_update: str = "plain",
        min_8bit_size: int = 4096,
        flat: bool = False,
    ) -> None:
        super().__init__(params, constructor_options(locals()), flat=flat)

    def validate_group(self, group: dict[str, Any]) -> None:
        check_all(group, ("momentum", "dampening", "nesterov"))
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                "nesterov=True needs momentum > 0 and dampening = 0 "
                f"(got momentum={group['momentum']}, dampening={group['dampening']})"
            )

    def state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("momentum_buffer",) if group["momentum"] > 0 else ()

    def rule_options(self, group: dict[str, Any], h: Hyper) -> dict[str, Any]:
        return {
            "momentum": group["momentum"],
            "dampening": group["dampening"],
            "nesterov": group["nesterov"],
        }

    def update(self, o, h: Hyper, param, grad, state, step) -> rules.Divisor:
        if o["momentum"] > 0:
            buf = state["momentum_buffer"]
            return rules.momentum_(param, grad, buf, lr=h.lr, first=step == 1, **o)
        return rules.sgd_(param, grad, lr=h.lr)

    def fused_covers(self, o, h: Hyper) -> bool:
        # torch's fused SGD covers coupled L2 only.
        return not (h.l1 or h.decoupled)

    def fused_supports(self, param: Tensor) -> bool:
        # torch's CPU fused SGD drops the update of most float16/bfloat16 elements
        # (torch 2.13); torch's own default path does not use it there.
        return not (param.device.type == "cpu" and param.dtype in _HALF)

    def fused(self, o, h: Hyper, params, grads, states, steps, first) -> None:
        on = o["momentum"] > 0
        torch._fused_sgd_(
            params,
            grads,
            [s["momentum_buffer"] for s in states] if on else [],
            weight_decay=h.coupled,
            lr=h.lr,
            maximize=h.maximize,
            is_first_step=first and on,
            **o,
        )

    def native_kernel(self, o) -> kernels.cpu.Kernel | None:
        if o["dampening"]:
            return None  # no dampening in the kernel (its first step is special)
        fields = {"momentum_on": o["momentum"] > 0, "nesterov": o["nesterov"], "mu": o["momentum"]}
        # In half precision the eager rule rounds exactly as torch's loop does.
        return kernels.cpu.Kernel("sgd", fields, dtypes=_FULL)
