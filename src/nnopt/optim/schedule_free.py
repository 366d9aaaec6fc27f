"""Schedule-Free SGD and AdamW (Defazio et al. 2024, "The Road Less Scheduled").

Drop-in twins of the ``schedulefree`` package's ``SGDScheduleFree`` and ``AdamWScheduleFree``
(1.4.1): the same arguments, the same bookkeeping in each param group (``k``, ``lr_max``,
``weight_sum``, ``scheduled_lr``, ``train_mode``), so state dicts load both ways, and the same
numbers step for step (the rules in ``rules/schedule_free.py``).

While training, a parameter holds y, the point where the gradient is taken; ``eval()`` moves
it to x, the average the model should be evaluated and saved at, and ``train()`` back:

    x = (y - (1 - beta) z) / beta  = lerp(y, z, 1 - 1/beta)      (eval)
    y = (1 - beta) z + beta x      = lerp(x, z, 1 - beta)        (train)

One difference from the package, on purpose: an nnopt optimizer starts in train mode (the
package starts in eval mode and refuses ``step()`` until ``train()`` is called; before the
first step y = x = z, so the two calls move nothing). ``step()`` in eval mode is refused, as
the package refuses it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from nnopt.optim import kernels, rules
from nnopt.optim.base import Optimizer, constructor_options
from nnopt.optim.lazy_state import COPY_OF_PARAM, Start
from nnopt.optim.options import Hyper, scalar
from nnopt.optim.registry import check_all
from nnopt.optim.validation import OptionError

# The package's per-group bookkeeping, at its start (lr_max -1: no step taken yet).
BOOKKEEPING = {"k": 0, "weight_sum": 0.0, "lr_max": -1.0, "scheduled_lr": 0.0}


class _ScheduleFree(Optimizer):
    """What both schedule-free optimizers share: the averaging weights, warm-up and modes."""

    schedule_free = True  # the trainer moves to x around evaluations; recipes take no schedule

    def _defaults(self, arguments: dict[str, Any]) -> dict[str, Any]:
        return {**constructor_options(arguments), **BOOKKEEPING, "train_mode": True}

    def beta(self, group: dict[str, Any]) -> float:
        """The interpolation y = (1 - beta) z + beta x (AdamW's beta1, SGD's momentum)."""
        raise NotImplementedError

    def validate_group(self, group: dict[str, Any]) -> None:
        check_all(group, ("warmup_steps", "r", "weight_lr_power"))
        if self.beta(group) <= 0:
            name = "betas[0]" if "betas" in group else "momentum"
            raise OptionError(
                f"{name} must be in (0, 1): x is recovered from y and z by dividing by it, "
                f"got {self.beta(group)!r}",
                option=name,
            )

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        # A group added later joins the optimizer's current mode (the package's would start
        # in eval mode beside groups in train mode, and be skipped by eval()).
        if self.param_groups:
            param_group.setdefault("train_mode", self.param_groups[0]["train_mode"])
        super().add_param_group(param_group)

    def initial_state(self, group: dict[str, Any], key: str) -> Start:
        return COPY_OF_PARAM if key == "z" else 0.0

    def hyper(self, group: dict[str, Any], lr: Any, tensors: bool = False) -> Hyper:
        # The rule owns weight_decay (the paper's, at y, through z); the base adds nnopt's l2
        # before and l1 after, at the warmed-up lr the rule steps with.
        return Hyper(
            lr=scalar(lr) * _warmup(group),
            coupled=scalar(group.get("l2", 0.0)),
            decoupled=0.0,
            l1=scalar(group.get("l1", 0.0)),
            maximize=bool(group.get("maximize", False)),
        )

    def fused_covers(self, o, h: Hyper) -> bool:
        return False  # torch has no schedule-free kernel

    @torch.no_grad()
    def eval(self) -> None:
        """Move every parameter to x, the average (evaluate and save the model there)."""
        self._move(train=False)

    @torch.no_grad()
    def train(self) -> None:
        """Move every parameter back to y, where the next gradient is taken."""
        self._move(train=True)

    @property
    def training(self) -> bool:
        """Whether the parameters hold y (train mode) rather than x."""
        return bool(self.param_groups[0]["train_mode"])

    def _move(self, train: bool) -> None:
        for group in self.param_groups:
            if group["train_mode"] == train:
                continue
            beta = self.beta(group)
            weight = 1 - beta if train else 1 - 1 / beta
            for p in group["params"]:
                z = self.state[p].get("z") if p in self.state else None
                if z is not None:
                    p.lerp_(z.to(p.device), weight)
            group["train_mode"] = train

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One step at y; refused in eval mode (the gradient would be x's)."""
        if not all(group["train_mode"] for group in self.param_groups):
            raise RuntimeError(
                f"{type(self).__name__}.step() in eval mode: the parameters hold the average "
                "x; call optimizer.train() before training steps (and optimizer.eval() before "
                "evaluating or saving)"
            )
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            _advance(group, scalar(self.current_lr(group)))
        super().step()
        for group in self.param_groups:
            group["k"] += 1
        return loss


def _warmup(group: dict[str, Any]) -> float:
    """The linear warm-up's factor at this step: (k + 1) / warmup_steps, then 1."""
    k, warmup = group["k"], group["warmup_steps"]
    return (k + 1) / warmup if k < warmup else 1.0


def _advance(group: dict[str, Any], lr: float) -> None:
    """This step's bookkeeping, as the package's: the warmed-up lr, its running maximum and
    the sum of the averaging weights w_t = (t^r) lr_max^weight_lr_power."""
    lr = group["scheduled_lr"] = lr * _warmup(group)
    group["lr_max"] = max(lr, group["lr_max"])
    group["weight_sum"] = group["weight_sum"] + _weight(group)


def _weight(group: dict[str, Any]) -> float:
    return ((group["k"] + 1) ** group["r"]) * (group["lr_max"] ** group["weight_lr_power"])


def averaging_weight(group: dict[str, Any]) -> float:
    """c_{t+1} = w_t / sum_{i<=t} w_i: how far this step moves x toward the new z (0 while
    every weight is 0, an lr of 0)."""
    total = group["weight_sum"]
    return _weight(group) / total if total else 0.0


class ScheduleFreeSGD(_ScheduleFree):
    """Schedule-Free SGD (Defazio et al. 2024): ``schedulefree.SGDScheduleFree``'s twin.

    u = g + lambda y;  y <- lerp(y, z, c) + eta (beta (1 - c) - 1) u;  z <- z - eta u, with
    c = w_t / sum w_i the averaging weight (w_t = t^r lr_max^weight_lr_power) and
    eta = lr min(t / warmup_steps, 1). No lr schedule: the average x replaces it.

    Args (the package's, same order and defaults):
        params: parameters or param groups.
        lr: learning rate (the package's default 1.0: larger than plain SGD's).
        momentum: beta in (0, 1), the interpolation between z and x.
        weight_decay: L2 at y (g + lambda y), as the package's.
        warmup_steps: linear warm-up of the lr over this many steps.
        r: polynomial weighting of the average, w_t proportional to t^r.
        weight_lr_power: the weights in the average are lr_max to this power.
        foreach: a hint (nnopt picks its own kernels).
    nnopt's extras (keyword-only): ``maximize``, ``l1``, ``l2``, ``flat``.
    Call ``eval()`` before evaluating or saving and ``train()`` after (``nnopt.train`` does).
    """

    step_fields = ("ckp1",)

    def __init__(
        self,
        params: Iterable[Any],
        lr: Any = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        l1: float = 0.0,
        l2: float = 0.0,
        state_dtype: str | None = None,
        param_update: str = "plain",
        min_8bit_size: int = 4096,
        flat: bool = False,
    ) -> None:
        super().__init__(params, self._defaults(locals()), flat=flat)

    def beta(self, group: dict[str, Any]) -> float:
        return scalar(group["momentum"])

    def validate_group(self, group: dict[str, Any]) -> None:
        check_all(group, ("momentum",))
        super().validate_group(group)

    def state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("z",)

    def rule_options(self, group: dict[str, Any], h: Hyper) -> dict[str, Any]:
        return {
            "momentum": self.beta(group),
            "y_decay": scalar(group["weight_decay"]),
            "ckp1": averaging_weight(group),
        }

    def update(self, o, h: Hyper, param, grad, state, step) -> rules.Divisor:
        return rules.schedule_free_sgd_(param, grad, state["z"], lr=h.lr, **o)

    def native_kernel(self, o) -> kernels.cpu.Kernel:
        return kernels.cpu.Kernel("schedule_free_sgd", o)


class ScheduleFreeAdamW(_ScheduleFree):
    """Schedule-Free AdamW (Defazio et al. 2024): ``schedulefree.AdamWScheduleFree``'s twin.

    v <- beta2 v + (1 - beta2) g^2;  u = g / (sqrt(v / (1 - beta2^t)) + eps) + lambda y
    y <- lerp(y, z, c) + eta (beta1 (1 - c) - 1) u;  z <- z - eta u, with c and eta as in
    :class:`ScheduleFreeSGD`. The AlgoPerf 2024 self-tuning track's winner.

    Args (the package's, same order and defaults):
        params: parameters or param groups.
        lr: learning rate (default 0.0025).
        betas: (beta1, beta2): the z/x interpolation, and the second moment's decay.
        eps: added to the denominator.
        weight_decay: decoupled from the preconditioner, taken at y and stepped through z
            (the package's and paper's AdamW decay).
        warmup_steps, r, weight_lr_power, foreach: as :class:`ScheduleFreeSGD`.
    nnopt's extras (keyword-only): ``maximize``, ``l1``, ``l2`` (coupled: into v too), ``flat``.
    """

    step_fields = ("ckp1", "bias_correction2")

    def __init__(
        self,
        params: Iterable[Any],
        lr: Any = 0.0025,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        l1: float = 0.0,
        l2: float = 0.0,
        state_dtype: str | None = None,
        param_update: str = "plain",
        min_8bit_size: int = 4096,
        flat: bool = False,
    ) -> None:
        super().__init__(params, self._defaults(locals()), flat=flat)

    def beta(self, group: dict[str, Any]) -> float:
        return scalar(group["betas"][0])

    def validate_group(self, group: dict[str, Any]) -> None:
        check_all(group, ("betas", "eps"))
        super().validate_group(group)

    def state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("z", "exp_avg_sq")

    def rule_options(self, group: dict[str, Any], h: Hyper) -> dict[str, Any]:
        beta1, beta2 = map(scalar, group["betas"])
        return {
            "beta1": beta1,
            "beta2": beta2,
            "eps": scalar(group["eps"]),
            "y_decay": scalar(group["weight_decay"]),
            "ckp1": averaging_weight(group),
            "bias_correction2": 1 - beta2 ** (group["k"] + 1),
        }

    def update(self, o, h: Hyper, param, grad, state, step) -> rules.Divisor:
        return rules.schedule_free_adamw_(
            param, grad, state["z"], state["exp_avg_sq"], lr=h.lr, **o
        )

    def native_kernel(self, o) -> kernels.cpu.Kernel:
        return kernels.cpu.Kernel("schedule_free_adamw", o)
