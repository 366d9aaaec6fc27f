"""AdEMAMix (Pagliardini et al. 2024): Adam plus a slow EMA of the gradient, not bias-corrected."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nnopt.optim import kernels, rules
from nnopt.optim.base import Optimizer, constructor_options
from nnopt.optim.options import Hyper
from nnopt.optim.registry import check_all
from nnopt.optim.validation import OptionError, check_nonnegative, check_unit_interval


class AdEMAMix(Optimizer):
    """AdEMAMix (Pagliardini, Ablin & Grangier 2024, "The AdEMAMix Optimizer: Better, Faster,
    Older", Algorithm 1).

    m1 <- b1 m1 + (1 - b1) g;  m2 <- b3 m2 + (1 - b3) g;  nu <- b2 nu + (1 - b2) g^2;
    theta <- theta - eta ((m1 / (1 - b1^t) + alpha m2) / (sqrt(nu / (1 - b2^t)) + eps)
    + lambda theta). The slow EMA (b3 = 0.9999: a half-life of ~7000 steps) keeps old
    gradients in the step; with ``t_alpha_beta3 = T`` alpha and b3 warm up over T steps
    (``rules.ademamix_schedule``), which the paper advises for b3 this close to 1. There is no
    torch twin: the reference is the paper's algorithm (and apple/ml-ademamix, its authors').

    Args:
        params: parameters or param groups.
        lr: learning rate (float or Tensor), or an nnopt schedule ``step -> lr``.
        betas: (b1, b2, b3), each in [0, 1): the fast EMA, the second moment, the slow EMA.
        alpha: the slow EMA's weight, >= 0.
        t_alpha_beta3: steps of the warmup of alpha and b3 (None: none).
        eps: added to the denominator, > 0.
        weight_decay: decoupled, times the lr, as the paper's lambda
            (``decoupled_weight_decay=False``: coupled L2 instead).
        maximize, foreach, differentiable: as torch's optimizers (``foreach``: a hint).
    nnopt's extras (keyword-only): ``decoupled_weight_decay``, ``l1`` (threshold
    ``l1 * eta / d`` with d the denominator above), ``l2``, ``flat``.
    """

    uses_step = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: Any = 1e-3,
        betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
        alpha: float = 5.0,
        t_alpha_beta3: float | None = None,
        eps: float = 1e-8,
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
        betas = group["betas"]
        for index, beta in enumerate(betas if isinstance(betas, tuple | list) else ()):
            check_unit_interval(f"betas[{index}]", beta)
        if not isinstance(betas, tuple | list) or len(betas) != 3:
            raise OptionError(
                f"betas must be three numbers (beta1, beta2, beta3), got {betas!r}",
                option="betas",
            )
        check_nonnegative("alpha", group["alpha"])  # (RMSprop's alpha is a decay in [0, 1))
        check_all(group, ("eps", "t_alpha_beta3"))
        if group["t_alpha_beta3"] is not None and not (betas[0] > 0 and betas[2] > 0):
            raise OptionError(
                f"t_alpha_beta3 warms beta3 up from beta1 in log space: betas[0] and betas[2] "
                f"must be > 0, got {betas!r}",
                option="betas",
            )

    def state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("exp_avg_fast", "exp_avg_slow", "exp_avg_sq")

    def rule_options(self, group: dict[str, Any], h: Hyper) -> dict[str, Any]:
        beta1, beta2, beta3 = map(float, group["betas"])
        t = group["t_alpha_beta3"]
        return {
            "beta1": beta1,
            "beta2": beta2,
            "beta3": beta3,
            "alpha": float(group["alpha"]),
            "t_alpha_beta3": None if t is None else float(t),
            "eps": float(group["eps"]),
        }

    def update(self, o, h: Hyper, param, grad, state, step) -> rules.Divisor:
        return rules.ademamix_(
            param,
            grad,
            state["exp_avg_fast"],
            state["exp_avg_slow"],
            state["exp_avg_sq"],
            step=step,
            lr=h.lr,
            **o,
        )

    def fused_covers(self, o, h: Hyper) -> bool:
        return False  # torch has no AdEMAMix

    def native_kernel(self, o) -> kernels.cpu.Kernel:
        # The warmup of alpha and beta3 runs in the kernel from each tensor's step count
        # (t_alpha_beta3 = 0: none).
        return kernels.cpu.Kernel("ademamix", {**o, "t_alpha_beta3": o["t_alpha_beta3"] or 0.0})
