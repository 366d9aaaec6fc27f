"""AdaGrad (torch.optim.Adagrad)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from nnopt.optim import kernels, rules
from nnopt.optim.base import Optimizer, constructor_options
from nnopt.optim.options import Hyper
from nnopt.optim.registry import check_all


class Adagrad(Optimizer):
    """AdaGrad (Duchi, Hazan & Singer 2011): ``torch.optim.Adagrad``, argument for argument.

    eta_t = eta / (1 + (t - 1) * lr_decay);  G <- G + g^2;  theta <- theta - eta_t * g /
    (sqrt(G) + eps). Its ever-growing G is what RMSProp's moving average fixes.

    Args (torch's, same order and defaults):
        params: parameters or param groups.
        lr: learning rate (float or Tensor), or an nnopt schedule ``step -> lr``.
        lr_decay: >= 0, the 1 / (1 + (t - 1) lr_decay) decay of the rule's step size.
        weight_decay: coupled L2 (``g + wd * theta``), as in torch.
        initial_accumulator_value: starting value of G, >= 0.
        eps: added to sqrt(G), > 0.
        foreach, maximize, differentiable, fused: torch's.
    nnopt's extras (keyword-only): ``decoupled_weight_decay``, ``l1`` (proximal, threshold
    ``l1 * eta / (sqrt(G) + eps)``), ``l2`` (coupled, on top of weight_decay), ``flat``.
    Decoupled decay and L1 use ``lr`` itself, not the ``lr_decay``-ed step size.
    """

    uses_step = True
    eager_state = True  # torch creates Adagrad's state in the constructor (share_memory)

    def __init__(
        self,
        params: Iterable[Any],
        lr: Any = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
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
        check_all(group, ("lr_decay", "eps", "initial_accumulator_value"))

    def state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("sum",)

    def initial_state(self, group: dict[str, Any], key: str) -> float:
        return group["initial_accumulator_value"]

    @staticmethod
    def step_size(o: dict[str, Any], lr: float, step: int) -> float:
        """eta_t = eta / (1 + (t - 1) * lr_decay), torch's clr."""
        return lr / (1 + (step - 1) * o["lr_decay"])

    def rule_options(self, group: dict[str, Any], h: Hyper) -> dict[str, Any]:
        return {"lr_decay": group["lr_decay"], "eps": group["eps"]}

    def update(self, o, h: Hyper, param, grad, state, step) -> rules.Divisor:
        lr = self.step_size(o, h.lr, step)
        return rules.adagrad_(param, grad, state["sum"], lr=lr, eps=o["eps"])

    def fused_covers(self, o, h: Hyper) -> bool:
        return not (h.l1 or h.decoupled)

    def fused(self, o, h: Hyper, params, grads, states, steps, first) -> None:
        torch._fused_adagrad_(
            params,
            grads,
            [s["sum"] for s in states],
            steps,
            lr=h.lr,
            weight_decay=h.coupled,
            maximize=h.maximize,
            **o,
        )

    def native_kernel(self, o) -> kernels.cpu.Kernel:
        return kernels.cpu.Kernel("adagrad", o)


AdaGrad = Adagrad  # the seed's spelling: the same class, torch's arguments
