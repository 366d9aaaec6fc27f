"""Lion (Chen et al. 2023): the sign of an interpolated momentum, every coordinate moving by lr."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from nnopt.optim import kernels, rules
from nnopt.optim.base import Optimizer, constructor_options
from nnopt.optim.options import Hyper
from nnopt.optim.registry import check_all


class Lion(Optimizer):
    """Lion, "EvoLved Sign Momentum" (Chen et al. 2023, Algorithm 2).

    c = b1 m + (1 - b1) g;  theta <- theta - eta sign(c);  m <- b2 m + (1 - b2) g, with the
    paper's decoupled weight decay theta <- theta (1 - eta wd) first. Its update has the size
    of the lr in every coordinate, so it takes a lr 3-10x below AdamW's and a weight decay
    3-10x above (the paper's advice). torch.optim has no Lion: the reference is the paper's
    algorithm (and lucidrains' lion-pytorch, its authors' port).

    Args:
        params: parameters or param groups.
        lr: learning rate (float or Tensor), or an nnopt schedule ``step -> lr``.
        betas: (b1, b2): the interpolation that gives the sign, the momentum's own decay.
        weight_decay: decoupled, as the paper's (``decoupled_weight_decay=False``: coupled).
        maximize, foreach, differentiable: as torch's optimizers (``foreach``: a hint).
    nnopt's extras (keyword-only): ``decoupled_weight_decay``, ``l1``, ``l2``, ``flat``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: Any = 1e-4,
        betas: tuple[Any, Any] = (0.9, 0.99),
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        decoupled_weight_decay: bool = True,
        l1: float = 0.0,
        l2: float = 0.0,
        state_dtype: str | None = None,
        param_update: str = "plain",
        min_8bit_size: int = 4096,
        flat: bool = False,
    ) -> None:
        super().__init__(params, constructor_options(locals()), flat=flat)

    def validate_group(self, group: dict[str, Any]) -> None:
        check_all(group, ("betas",))

    def state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("exp_avg",)

    def rule_options(self, group: dict[str, Any], h: Hyper) -> dict[str, Any]:
        beta1, beta2 = map(h.number, group["betas"])
        return {"beta1": beta1, "beta2": beta2}

    def update(self, o, h: Hyper, param, grad, state, step) -> rules.Divisor:
        return rules.lion_(param, grad, state["exp_avg"], lr=h.lr, **o)

    def fused_covers(self, o, h: Hyper) -> bool:
        return False  # torch has no Lion

    def native_kernel(self, o) -> kernels.cpu.Kernel:
        # float32 and float64 only: in bfloat16 the kernel's float arithmetic could flip a
        # sign that the eager rule's rounding keeps (a step of 2 lr).
        return kernels.cpu.Kernel("lion", o, dtypes=frozenset((torch.float32, torch.float64)))
