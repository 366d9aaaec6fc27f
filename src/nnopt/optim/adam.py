"""Adam and AdamW (torch.optim.Adam and torch.optim.AdamW)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from nnopt.optim import kernels, rules
from nnopt.optim.base import Optimizer, constructor_options
from nnopt.optim.options import Hyper
from nnopt.optim.registry import check_all
from nnopt.optim.validation import OptionError, check_tensor_option


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with the seed's bias correction: ``torch.optim.Adam``.

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;  m_hat = m / (1 - b1^t),
    v_hat = v / (1 - b2^t);  theta <- theta - eta * m_hat / (sqrt(v_hat) + eps)
    (AMSGrad, Reddi et al. 2018: v_hat from the running maximum of v).

    Args (torch's, same order and defaults):
        params: parameters or param groups.
        lr: learning rate (float or Tensor), or an nnopt schedule ``step -> lr``.
        betas: (b1, b2), each in [0, 1) (floats or Tensors).
        eps: added to sqrt(v_hat), > 0.
        weight_decay: coupled L2 (``g + wd * theta``), or decoupled with
            ``decoupled_weight_decay=True`` (then Adam is AdamW), as in torch.
        amsgrad: use the running maximum of v.
        foreach, maximize, capturable, differentiable, fused, decoupled_weight_decay: torch's.
    nnopt's extras (keyword-only):
        l1: proximal L1 with per-coordinate threshold ``l1 * eta / (sqrt(v_hat) + eps)``.
        l2: coupled L2 on top of ``weight_decay``.
        flat: keep everything in flat buffers.
    """

    uses_step = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: Any = 1e-3,
        betas: tuple[Any, Any] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
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
        betas = group["betas"]
        if not isinstance(betas, tuple | list) or len(betas) != 2:
            raise OptionError(f"betas must be a pair (beta1, beta2), got {betas!r}", option="betas")
        if group.get("foreach") and not group.get("capturable"):
            # torch's foreach Adam takes Python numbers only; nnopt follows its refusal.
            for name, value in (
                ("lr", group["lr"]),
                ("betas[0]", betas[0]),
                ("betas[1]", betas[1]),
            ):
                if isinstance(value, torch.Tensor):
                    raise OptionError(
                        f"{name} as a Tensor needs foreach=False or None, got foreach=True",
                        f"{name} as a Tensor is not supported for capturable=False and "
                        "foreach=True",
                        option=name,
                    )
        if isinstance(betas[0], torch.Tensor) != isinstance(betas[1], torch.Tensor):
            raise OptionError(
                f"betas must be two numbers or two Tensors, got {betas!r}",
                "betas must be either both floats or both Tensors",
                option="betas",
            )
        for index, beta in enumerate(betas):
            check_tensor_option(f"betas[{index}]", beta)
        check_all(group, ("betas", "eps", "amsgrad"))

    def state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        keys = ("exp_avg", "exp_avg_sq")
        return keys + ("max_exp_avg_sq",) if group["amsgrad"] else keys

    def rule_options(self, group: dict[str, Any], h: Hyper) -> dict[str, Any]:
        beta1, beta2 = map(h.number, group["betas"])
        return {"beta1": beta1, "beta2": beta2, "eps": group["eps"], "amsgrad": group["amsgrad"]}

    def update(self, o, h: Hyper, param, grad, state, step) -> rules.Divisor:
        return rules.adam_(
            param,
            grad,
            state["exp_avg"],
            state["exp_avg_sq"],
            step=step,
            lr=h.lr,
            beta1=o["beta1"],
            beta2=o["beta2"],
            eps=o["eps"],
            max_exp_avg_sq=state.get("max_exp_avg_sq"),
        )

    def fused_covers(self, o, h: Hyper) -> bool:
        # torch's fused kernels cover coupled L2 (_fused_adam_) or decoupled decay
        # (_fused_adamw_), one at a time, and no L1.
        return not (h.l1 or (h.coupled and h.decoupled))

    def fused(self, o, h: Hyper, params, grads, states, steps, first) -> None:
        kernel = torch._fused_adamw_ if h.decoupled else torch._fused_adam_
        kernel(
            params,
            grads,
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [s["max_exp_avg_sq"] for s in states] if o["amsgrad"] else [],
            steps,
            lr=h.lr,
            weight_decay=h.decoupled or h.coupled,
            maximize=h.maximize,
            **o,
        )

    def native_kernel(self, o) -> kernels.cpu.Kernel:
        return kernels.cpu.Kernel("adam", o)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019): ``torch.optim.AdamW``.

    theta <- theta * (1 - eta * weight_decay), then the Adam step; weight_decay 1e-2 by
    default. Same arguments as :class:`Adam` (``decoupled_weight_decay`` is always True).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: Any = 1e-3,
        betas: tuple[Any, Any] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        l1: float = 0.0,
        l2: float = 0.0,
        state_dtype: str | None = None,
        param_update: str = "plain",
        min_8bit_size: int = 4096,
        flat: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=True,
            l1=l1,
            l2=l2,
            state_dtype=state_dtype,
            param_update=param_update,
            min_8bit_size=min_8bit_size,
            flat=flat,
        )
