"""Adam and AdamW."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from nnopt.optim import kernels, rules
from nnopt.optim.base import Optimizer
from nnopt.optim.validation import check_positive, check_type, check_unit_interval


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with the seed's bias correction; AMSGrad optional.

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;  m_hat = m / (1 - b1^t),
    v_hat = v / (1 - b2^t);  theta <- theta - eta * m_hat / (sqrt(v_hat) + eps).
    Equal to ``torch.optim.Adam`` (and, with ``weight_decay``, to ``torch.optim.AdamW``).

    Args:
        params: parameters or param groups.
        lr: learning rate, or a schedule ``step -> lr``.
        betas: (b1, b2), each in [0, 1).
        eps: added to sqrt(v_hat), > 0.
        amsgrad: use the running maximum of v (Reddi et al. 2018).
        l1: proximal L1 with per-coordinate threshold ``l1 * eta / (sqrt(v_hat) + eps)``.
        l2: coupled L2 (torch.optim.Adam's weight_decay).
        weight_decay: decoupled decay (torch.optim.AdamW's weight_decay).
        flat: keep everything in flat buffers (None: wherever safe).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: Any = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        amsgrad: bool = False,
        *,
        l1: float = 0.0,
        l2: float = 0.0,
        weight_decay: float = 0.0,
        flat: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr, betas=betas, eps=eps, amsgrad=amsgrad, l1=l1, l2=l2, weight_decay=weight_decay
        )
        super().__init__(params, defaults, flat=flat)

    uses_step = True

    def validate_group(self, group: dict[str, Any]) -> None:
        betas = group["betas"]
        if not isinstance(betas, tuple | list) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        check_unit_interval("betas[0]", betas[0])
        check_unit_interval("betas[1]", betas[1])
        check_positive("eps", group["eps"])
        check_type("amsgrad", group["amsgrad"], (bool,))

    def state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        keys = ("exp_avg", "exp_avg_sq")
        return keys + ("max_exp_avg_sq",) if group["amsgrad"] else keys

    def update(self, group, param, grad, state, step, lr) -> rules.Divisor:
        beta1, beta2 = group["betas"]
        return rules.adam_(
            param,
            grad,
            state["exp_avg"],
            state["exp_avg_sq"],
            step=step,
            lr=lr,
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            max_exp_avg_sq=state.get("max_exp_avg_sq"),
        )

    def fused_update(self, group, param, grad, state, step, lr) -> bool:
        beta1, beta2 = group["betas"]
        # torch's fused kernels cover coupled L2 (_fused_adam_) or decoupled decay
        # (_fused_adamw_), one at a time, and no L1.
        l2, decay = group["l2"], group["weight_decay"]
        if (
            not kernels.use_torch_fused(self.kernels)
            or group["l1"]
            or (l2 and decay)
            or param.is_complex()
        ):
            return self.native_update(group, param, grad, state, step, lr)
        kernel = torch._fused_adamw_ if decay else torch._fused_adam_
        kernel(
            [param],
            [grad],
            [state["exp_avg"]],
            [state["exp_avg_sq"]],
            [state["max_exp_avg_sq"]] if group["amsgrad"] else [],
            [torch.tensor(float(step), device=param.device)],
            lr=lr,
            beta1=beta1,
            beta2=beta2,
            weight_decay=decay or l2,
            eps=group["eps"],
            amsgrad=group["amsgrad"],
            maximize=False,
        )
        return True

    def native_update(self, group, param, grad, state, step, lr) -> bool:
        """The whole update in nnopt's one-pass kernel, when the mode and tensors allow."""
        beta1, beta2 = group["betas"]
        return kernels.use_native(self.kernels) and kernels.cpu.adam_(
            param,
            grad,
            state["exp_avg"],
            state["exp_avg_sq"],
            step=step,
            lr=lr,
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            max_exp_avg_sq=state.get("max_exp_avg_sq"),
            l2=group["l2"],
            weight_decay=group["weight_decay"],
            l1=group["l1"],
        )


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), 1e-2 by default.

    theta <- theta * (1 - eta * weight_decay), then the Adam step: ``torch.optim.AdamW``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: Any = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        amsgrad: bool = False,
        *,
        l1: float = 0.0,
        l2: float = 0.0,
        weight_decay: float = 1e-2,
        flat: bool | None = None,
    ) -> None:
        super().__init__(
            params, lr, betas, eps, amsgrad, l1=l1, l2=l2, weight_decay=weight_decay, flat=flat
        )
