"""Muon (torch.optim.Muon): momentum orthogonalized by Newton-Schulz, for 2-D parameters."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from nnopt.optim import rules
from nnopt.optim.base import Optimizer, constructor_options
from nnopt.optim.options import Hyper
from nnopt.optim.registry import check_all
from nnopt.optim.rules.muon import NS_COEFFICIENTS, NS_STEPS

MUON_OPTIONS = ("momentum", "nesterov", "ns_coefficients", "eps", "ns_steps", "adjust_lr_fn")


class Muon(Optimizer):
    """Muon (Jordan et al. 2024; Liu et al. 2025): ``torch.optim.Muon``.

    B <- mu B + (1 - mu) g;  U = (1 - mu) g + mu B (Nesterov) or B;
    theta <- theta (1 - eta wd) - eta r(A, B) NS(U)
    with NS the quintic Newton-Schulz iteration (in bfloat16, as torch) that takes U to about
    its polar factor, and r the lr's adjustment to the (A, B) shape: "original" (None)
    sqrt(max(1, A / B)), "match_rms_adamw" 0.2 sqrt(max(A, B)) (the RMS of AdamW's update,
    so AdamW's lr and weight decay carry over). Only 2-D parameters, as torch's: use
    :func:`nnopt.muon_for` for a whole model (AdamW for everything else, conv kernels as
    matrices).

    Args (torch's, same order and defaults):
        params, lr, weight_decay (decoupled, at the unadjusted lr), momentum, nesterov,
        ns_coefficients (a, b, c), eps (floor of the Frobenius norm), ns_steps, adjust_lr_fn.
    nnopt's extras (keyword-only): ``decoupled_weight_decay`` (False: coupled L2), ``l1``
    (threshold l1 * eta * r), ``l2``, ``flat`` (storage only: each matrix is stepped whole).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: Any = 1e-3,
        weight_decay: float = 0.1,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
        eps: float = 1e-7,
        ns_steps: int = NS_STEPS,
        adjust_lr_fn: str | None = None,
        *,
        decoupled_weight_decay: bool = True,
        l1: float = 0.0,
        l2: float = 0.0,
        state_dtype: str | None = None,
        param_update: str = "plain",
        min_8bit_size: int = 4096,
        flat: bool = False,
    ) -> None:
        super().__init__(params, constructor_options(locals()), flat=flat)
        for group in self.param_groups:
            check_matrices(group["params"])

    def validate_group(self, group: dict[str, Any]) -> None:
        check_all(group, MUON_OPTIONS)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        if hasattr(self, "_kernels"):  # (after the constructor: torch checks there)
            check_matrices(self.param_groups[-1]["params"])

    def whole_tensors(self, group: dict[str, Any]) -> bool:
        return True

    def start_state(self, group: dict[str, Any], param: Tensor) -> dict[str, Tensor]:
        return {"momentum_buffer": torch.zeros_like(param, memory_format=torch.preserve_format)}

    def rule_options(self, group: dict[str, Any], h: Hyper) -> dict[str, Any]:
        return {k: group[k] for k in MUON_OPTIONS}

    def update(self, o, h: Hyper, param, grad, state, step) -> rules.Divisor:
        return rules.muon_(param, grad, state["momentum_buffer"], lr=h.number(h.lr), **o)

    def fused_covers(self, o, h: Hyper) -> bool:
        return False  # torch's Muon has no fused or foreach kernel

    def native_kernel(self, o) -> None:
        return None  # matrix products: torch's own kernels do the work


def check_matrices(params: Iterable[Tensor]) -> None:
    """torch's Muon takes 2-D parameters only, and says so in these words."""
    for p in params:
        if p.ndim != 2:
            raise ValueError(
                f"Muon takes 2-D parameters only (hidden matrices); use nnopt.muon_for(model) "
                f"to give the others to AdamW (torch.optim: Muon only supports 2D parameters "
                f"whereas we found a parameter with size: {p.size()})"
            )
