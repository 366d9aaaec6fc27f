"""NAdam (torch.optim.NAdam): Adam with Nesterov momentum and Dozat's momentum schedule."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nnopt.optim import kernels, rules
from nnopt.optim.base import Optimizer, constructor_options
from nnopt.optim.options import Hyper
from nnopt.optim.registry import check_all


class NAdam(Optimizer):
    """NAdam (Dozat 2016, "Incorporating Nesterov Momentum into Adam"): ``torch.optim.NAdam``.

    mu_t = b1 (1 - 0.5 * 0.96^(t psi));  P_t = mu_1 mu_2 ... mu_t
    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;  d = sqrt(v / (1 - b2^t)) + eps
    theta <- theta - eta [(1 - mu_t) / (1 - P_t) g + mu_{t+1} / (1 - P_t mu_{t+1}) m] / d

    The running product P_t is kept per tensor as torch keeps it (``state["mu_product"]``, a
    float32 scalar beside ``state["step"]``), so state dicts cross to torch.optim.NAdam and
    back, and a product loaded from torch is continued, not recomputed.

    Args (torch's, same order and defaults):
        params: parameters or param groups.
        lr: learning rate (float or Tensor), or an nnopt schedule ``step -> lr``.
        betas: (b1, b2), each in [0, 1).
        eps: added to sqrt(v_hat), > 0.
        weight_decay: coupled L2 (``g + wd * theta``), or decoupled with
            ``decoupled_weight_decay=True`` (theta <- theta (1 - eta wd): NAdamW), as torch.
        momentum_decay: psi of the momentum schedule (4e-3, Dozat's).
        foreach, maximize, capturable, differentiable: torch's (``foreach``: a hint;
            ``capturable=True`` is refused).
    nnopt's extras (keyword-only): ``l1`` (threshold ``l1 * eta / d``), ``l2``, ``flat``.
    """

    uses_step = True
    scalar_state = {"mu_product": 1.0}

    def __init__(
        self,
        params: Iterable[Any],
        lr: Any = 2e-3,
        betas: tuple[Any, Any] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum_decay: float = 4e-3,
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
        check_all(group, ("betas", "eps", "momentum_decay"))

    def state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq")

    def rule_options(self, group: dict[str, Any], h: Hyper) -> dict[str, Any]:
        beta1, beta2 = map(h.number, group["betas"])
        return {
            "beta1": beta1,
            "beta2": beta2,
            "eps": group["eps"],
            "momentum_decay": group["momentum_decay"],
        }

    def update(self, o, h: Hyper, param, grad, state, step) -> rules.Divisor:
        return rules.nadam_(
            param,
            grad,
            state["exp_avg"],
            state["exp_avg_sq"],
            state["mu_product"],
            step=step,
            lr=h.lr,
            **o,
        )

    def fused_covers(self, o, h: Hyper) -> bool:
        return False  # torch has no fused NAdam

    def native_kernel(self, o) -> kernels.cpu.Kernel:
        return kernels.cpu.Kernel("nadam", o)
