"""RMSProp in torch's form (``RMSprop``) and in the seed's (``RMSProp``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nnopt.optim import kernels, rules
from nnopt.optim.base import Optimizer, constructor_options
from nnopt.optim.options import Hyper
from nnopt.optim.registry import check, check_all


class RMSprop(Optimizer):
    """RMSProp (Tieleman & Hinton 2012): ``torch.optim.RMSprop``, argument for argument.

    E <- alpha E + (1 - alpha) g^2;  centered: gbar <- alpha gbar + (1 - alpha) g and
    S = E - gbar^2, else S = E;  d = sqrt(S) + eps;  theta <- theta - eta g / d;
    momentum mu: b <- mu b + g / d, theta <- theta - eta b.

    Args (torch's, same order and defaults): params, lr (1e-2), alpha (0.99), eps (1e-8),
    weight_decay (coupled L2), momentum, centered, capturable, foreach, maximize,
    differentiable. nnopt's extras (keyword-only): ``eps_inside_sqrt`` (d = sqrt(S + eps),
    the seed's form), ``decoupled_weight_decay``, ``l1``, ``l2``, ``flat``.
    """

    uses_step = True  # unused by the rule; kept so state dicts match torch.optim.RMSprop's
    rule_reads_step = False
    decay_name = "alpha"  # what error messages call the decay (the seed's class says rho)

    def __init__(
        self,
        params: Iterable[Any],
        lr: Any = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        *,
        eps_inside_sqrt: bool = False,
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
        check("alpha", group["alpha"], shown=self.decay_name)
        check_all(group, ("eps", "momentum", "eps_inside_sqrt", "centered"))

    def state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        keys: tuple[str, ...] = ("square_avg",)
        if group["momentum"] > 0:
            keys += ("momentum_buffer",)
        if group["centered"]:
            keys += ("grad_avg",)
        return keys

    def rule_options(self, group: dict[str, Any], h: Hyper) -> dict[str, Any]:
        return {
            "rho": group["alpha"],
            "eps": group["eps"],
            "eps_inside_sqrt": group["eps_inside_sqrt"],
            "momentum": group["momentum"],
            "centered": group["centered"],
        }

    def update(self, o, h: Hyper, param, grad, state, step) -> rules.Divisor:
        return rules.rmsprop_(
            param,
            grad,
            state["square_avg"],
            lr=h.lr,
            rho=o["rho"],
            eps=o["eps"],
            eps_inside_sqrt=o["eps_inside_sqrt"],
            grad_avg=state.get("grad_avg"),
            momentum_buffer=state.get("momentum_buffer"),
            momentum=o["momentum"],
        )

    def fused_covers(self, o, h: Hyper) -> bool:
        return False  # torch has no fused RMSprop

    def native_kernel(self, o) -> kernels.cpu.Kernel:
        fields = dict(o, mu=o["momentum"], momentum_on=o["momentum"] > 0)
        del fields["momentum"]
        return kernels.cpu.Kernel("rmsprop", fields)


class RMSProp(RMSprop):
    """RMSProp in the seed's form: d = sqrt(E + eps), decay ``rho`` = 0.9, lr 1e-3.

    E <- rho E + (1 - rho) g^2;  theta <- theta - eta * g / sqrt(E + eps). The same class as
    :class:`RMSprop` with the seed's names and defaults: ``rho`` is stored as torch's
    ``alpha`` (param groups may say either), ``eps_inside_sqrt=False`` gives torch's form.
    """

    decay_name = "rho"

    def __init__(
        self,
        params: Iterable[Any],
        lr: Any = 1e-3,
        rho: float = 0.9,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        *,
        eps_inside_sqrt: bool = True,
        maximize: bool = False,
        foreach: bool | None = None,
        decoupled_weight_decay: bool = False,
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
            rho,
            eps,
            weight_decay,
            momentum,
            centered,
            foreach=foreach,
            maximize=maximize,
            eps_inside_sqrt=eps_inside_sqrt,
            decoupled_weight_decay=decoupled_weight_decay,
            l1=l1,
            l2=l2,
            state_dtype=state_dtype,
            param_update=param_update,
            min_8bit_size=min_8bit_size,
            flat=flat,
        )

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if "rho" in param_group:
            param_group = dict(param_group)
            param_group["alpha"] = param_group.pop("rho")
        super().add_param_group(param_group)
