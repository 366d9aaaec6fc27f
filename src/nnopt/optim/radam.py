"""RAdam (torch.optim.RAdam): Adam whose adaptive step is rectified while its variance is
intractable, so it needs no warmup."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nnopt.optim import kernels, rules
from nnopt.optim.base import Optimizer, constructor_options
from nnopt.optim.options import Hyper
from nnopt.optim.registry import check_all


class RAdam(Optimizer):
    """RAdam (Liu et al. 2020, "On the Variance of the Adaptive Learning Rate and Beyond"):
    ``torch.optim.RAdam``.

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;  m_hat = m / (1 - b1^t)
    rho_inf = 2 / (1 - b2) - 1;  rho_t = rho_inf - 2 t b2^t / (1 - b2^t)
    rho_t > 5:  r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t)),
                theta <- theta - eta r_t m_hat sqrt(1 - b2^t) / (sqrt(v) + eps)
    otherwise:  theta <- theta - eta m_hat   (the first steps: momentum SGD)

    Args (torch's, same order and defaults):
        params: parameters or param groups.
        lr: learning rate (float or Tensor), or an nnopt schedule ``step -> lr``.
        betas: (b1, b2), each in [0, 1).
        eps: added to sqrt(v), > 0.
        weight_decay: coupled L2 (``g + wd * theta``), or decoupled with
            ``decoupled_weight_decay=True`` (theta <- theta (1 - eta wd): RAdamW), as torch.
        foreach, maximize, capturable, differentiable: torch's (``foreach``: a hint;
            ``capturable=True`` is refused).
    nnopt's extras (keyword-only): ``l1`` (threshold ``l1 * eta / d``), ``l2``, ``flat``.
    """

    uses_step = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: Any = 1e-3,
        betas: tuple[Any, Any] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        l1: float = 0.0,
        l2: float = 0.0,
        state_dtype: str | None = None,
        param_update: str = "plain",
        min_8bit_size: int = 4096,
        flat: bool = False,
    ) -> None:
        super().__init__(params, constructor_options(locals()), flat=flat)

    def validate_group(self, group: dict[str, Any]) -> None:
        check_all(group, ("betas", "eps"))

    def state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq")

    def rule_options(self, group: dict[str, Any], h: Hyper) -> dict[str, Any]:
        beta1, beta2 = map(h.number, group["betas"])
        return {"beta1": beta1, "beta2": beta2, "eps": group["eps"]}

    def update(self, o, h: Hyper, param, grad, state, step) -> rules.Divisor:
        return rules.radam_(
            param, grad, state["exp_avg"], state["exp_avg_sq"], step=step, lr=h.lr, **o
        )

    def fused_covers(self, o, h: Hyper) -> bool:
        return False  # torch has no fused RAdam

    def native_kernel(self, o) -> kernels.cpu.Kernel:
        return kernels.cpu.Kernel("radam", o)
