"""Adafactor (torch.optim.Adafactor): factored second moments, relative step sizes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from nnopt.optim import rules
from nnopt.optim.base import Optimizer, constructor_options
from nnopt.optim.options import Hyper, step_dtype
from nnopt.optim.registry import check_all
from nnopt.optim.validation import OptionError, check_nonnegative


class Adafactor(Optimizer):
    """Adafactor (Shazeer & Stern 2018), as ``torch.optim.Adafactor``.

    alpha_t = max(eps2, RMS(theta)) min(eta, 1 / sqrt(t));  theta <- theta (1 - eta wd);
    V_t from row and column means of g^2 for a matrix (the last two dimensions), from g^2
    for the others, each a moving average with 1 - beta2_t = t^beta2_decay;
    U = g / sqrt(max(V, eps1^2));  theta <- theta - alpha_t U / max(1, RMS(U) / d).
    A (n, m) matrix keeps n + m numbers of second moment, not n m. The lr caps the relative
    step size rho_t and scales the decoupled decay (torch's reading; the paper has no lr).

    Args (torch's, same order and defaults):
        params, lr, beta2_decay (<= 0), eps ((eps1 or None: the dtype's machine epsilon,
        eps2)), d (the clipping threshold, >= 1), weight_decay (decoupled), foreach, maximize.
    nnopt's extras (keyword-only): ``decoupled_weight_decay`` (False: coupled L2), ``l1``
    (threshold at the coordinate's own step), ``l2``, ``flat`` (storage only).
    """

    uses_step = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: Any = 1e-2,
        beta2_decay: float = -0.8,
        eps: tuple[float | None, float] = (None, 1e-3),
        d: float = 1.0,
        weight_decay: float = 0.0,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
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
        check_all(group, ("beta2_decay", "d"))
        eps = group["eps"]
        if not isinstance(eps, tuple | list) or len(eps) != 2:
            raise OptionError(f"eps must be a pair (eps1 or None, eps2), got {eps!r}", option="eps")
        if eps[0] is not None:
            check_nonnegative("eps[0]", eps[0])
        check_nonnegative("eps[1]", eps[1])

    def whole_tensors(self, group: dict[str, Any]) -> bool:
        return True

    def start_state(self, group: dict[str, Any], param: Tensor) -> dict[str, Tensor]:
        state = {"step": torch.tensor(0.0, dtype=step_dtype())}
        if param.dim() > 1:  # factored over the last two dimensions
            state["row_var"] = param.new_zeros((*param.shape[:-1], 1))
            state["col_var"] = param.new_zeros((*param.shape[:-2], 1, param.shape[-1]))
        else:
            state["variance"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        return state

    def hyper(self, group: dict[str, Any], lr: Any, tensors: bool = False) -> Hyper:
        # The rule applies the decoupled decay itself (its step size alpha_t reads theta before
        # the decay): the base applies none; the rule's options carry it.
        return replace(Hyper.of(group, lr, tensors), decoupled=0.0)

    def rule_options(self, group: dict[str, Any], h: Hyper) -> dict[str, Any]:
        eps1, eps2 = group["eps"]
        decay = Hyper.of(group, h.lr, h.tensors).decoupled
        return {
            "beta2_decay": group["beta2_decay"], "eps1": eps1, "eps2": eps2, "d": group["d"],
            "weight_decay": decay,
        }  # fmt: skip

    def update(self, o, h: Hyper, param, grad, state, step) -> rules.Divisor:
        eps1 = torch.finfo(param.dtype).eps if o["eps1"] is None else o["eps1"]
        return rules.adafactor_(
            param,
            grad,
            **state,
            step=step,
            lr=h.number(h.lr),
            beta2_decay=o["beta2_decay"],
            eps1=eps1,
            eps2=o["eps2"],
            d=o["d"],
            weight_decay=o["weight_decay"],
            divisor=bool(h.l1),
        )

    def fused_covers(self, o, h: Hyper) -> bool:
        return False  # torch has no fused Adafactor

    def native_kernel(self, o) -> None:
        return None  # row and column reductions and a norm per tensor: torch's ops
