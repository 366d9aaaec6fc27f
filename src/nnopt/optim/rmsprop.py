"""RMSProp, in the seed's form and in torch's."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nnopt.optim import kernels, rules
from nnopt.optim.base import Optimizer
from nnopt.optim.validation import check_positive, check_type, check_unit_interval


class RMSProp(Optimizer):
    """RMSProp (Tieleman & Hinton 2012): divide by a moving root mean square of gradients.

    E <- rho E + (1 - rho) g^2;  theta <- theta - eta * g / sqrt(E + eps)   (the seed's form).
    With ``eps_inside_sqrt=False`` the denominator is sqrt(E) + eps and the optimizer equals
    ``torch.optim.RMSprop`` (alpha = rho), including ``centered`` (E - gbar^2 under the root,
    gbar the moving mean of g) and ``momentum`` (b <- mu b + g / d; theta <- theta - eta b).

    Args:
        params: parameters or param groups.
        lr: learning rate, or a schedule ``step -> lr``.
        rho: decay of the moving average, in [0, 1).
        eps: > 0, inside the square root by default (the seed), outside with
            ``eps_inside_sqrt=False`` (torch).
        momentum: mu in [0, 1).
        centered: normalize by the moving variance instead of the second moment.
        l1: proximal L1 with per-coordinate threshold ``l1 * eta / d``.
        l2: coupled L2 (torch's weight_decay).
        weight_decay: decoupled decay.
        flat: keep everything in flat buffers (None: wherever safe).
    """

    uses_step = True  # unused by the rule; kept so state dicts match torch.optim.RMSprop's

    def __init__(
        self,
        params: Iterable[Any],
        lr: Any = 1e-3,
        rho: float = 0.9,
        eps: float = 1e-8,
        eps_inside_sqrt: bool = True,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        l1: float = 0.0,
        l2: float = 0.0,
        weight_decay: float = 0.0,
        flat: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            rho=rho,
            eps=eps,
            eps_inside_sqrt=eps_inside_sqrt,
            momentum=momentum,
            centered=centered,
            l1=l1,
            l2=l2,
            weight_decay=weight_decay,
        )
        super().__init__(params, defaults, flat=flat)

    def validate_group(self, group: dict[str, Any]) -> None:
        check_unit_interval("rho", group["rho"])
        check_positive("eps", group["eps"])
        check_unit_interval("momentum", group["momentum"])
        check_type("eps_inside_sqrt", group["eps_inside_sqrt"], (bool,))
        check_type("centered", group["centered"], (bool,))

    def state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        keys: tuple[str, ...] = ("square_avg",)
        if group["momentum"] > 0:
            keys += ("momentum_buffer",)
        if group["centered"]:
            keys += ("grad_avg",)
        return keys

    def update(self, group, param, grad, state, step, lr) -> rules.Divisor:
        return rules.rmsprop_(
            param,
            grad,
            state["square_avg"],
            lr=lr,
            rho=group["rho"],
            eps=group["eps"],
            eps_inside_sqrt=group["eps_inside_sqrt"],
            grad_avg=state.get("grad_avg"),
            momentum_buffer=state.get("momentum_buffer"),
            momentum=group["momentum"],
        )

    def fused_update(self, group, param, grad, state, step, lr) -> bool:
        # torch has no fused RMSprop; nnopt's native kernel does the whole update in one pass.
        return kernels.use_native(self.kernels) and kernels.cpu.rmsprop_(
            param,
            grad,
            state["square_avg"],
            lr=lr,
            rho=group["rho"],
            eps=group["eps"],
            eps_inside_sqrt=group["eps_inside_sqrt"],
            grad_avg=state.get("grad_avg"),
            momentum_buffer=state.get("momentum_buffer"),
            momentum=group["momentum"],
            l2=group["l2"],
            weight_decay=group["weight_decay"],
            l1=group["l1"],
        )
