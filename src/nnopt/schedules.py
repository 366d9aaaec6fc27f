"""Learning-rate schedules: plain ``step -> lr`` callables, and a reduce-on-plateau controller.

A schedule is a small frozen dataclass: picklable, printable (its repr reads like the call that
built it) and pure, so an optimizer only has to remember the step counter to resume exactly.
Step 0 is the first optimizer step. Each class documents its formula; where PyTorch has the same
schedule the values agree with ``torch.optim.lr_scheduler`` (see the tests).

``ReduceOnPlateau`` is not a function of the step but of a metric; it keeps a multiplicative
``scale`` that the optimizer applies on top of the schedule:
``max(schedule(step) * scale, min_lr)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nnopt.checks import require

# The one definition of the schedule type (step -> lr); optimizers import it from here.
Schedule = Callable[[int], float]

__all__ = [
    "ReduceOnPlateau",
    "Schedule",
    "constant",
    "cosine",
    "exponential_decay",
    "join",
    "linear_warmup",
    "one_cycle",
    "step_decay",
]


def _check_lr(name: str, value: float) -> None:
    require(value >= 0, name, ">= 0", value)


@dataclass(frozen=True)
class constant:
    """``lr(step) = lr``."""

    lr: float

    def __post_init__(self) -> None:
        _check_lr("lr", self.lr)

    def __call__(self, step: int) -> float:
        return float(self.lr)


@dataclass(frozen=True)
class step_decay:
    """``lr(step) = lr * gamma ** (step // step_size)``, as ``torch.optim.lr_scheduler.StepLR``."""

    lr: float
    step_size: int
    gamma: float = 0.1

    def __post_init__(self) -> None:
        _check_lr("lr", self.lr)
        require(self.step_size >= 1, "step_size", ">= 1", self.step_size)
        require(0 < self.gamma <= 1, "gamma", "in (0, 1]", self.gamma)

    def __call__(self, step: int) -> float:
        return float(self.lr * self.gamma ** (step // self.step_size))


@dataclass(frozen=True)
class exponential_decay:
    """``lr(step) = lr * gamma ** (step / decay_steps)``; the exponent is floored if ``staircase``.

    With ``decay_steps=1`` this is ``torch.optim.lr_scheduler.ExponentialLR``.
    """

    lr: float
    gamma: float
    decay_steps: int = 1
    staircase: bool = False

    def __post_init__(self) -> None:
        _check_lr("lr", self.lr)
        require(0 < self.gamma <= 1, "gamma", "in (0, 1]", self.gamma)
        require(self.decay_steps >= 1, "decay_steps", ">= 1", self.decay_steps)

    def __call__(self, step: int) -> float:
        exponent = step / self.decay_steps
        if self.staircase:
            exponent = math.floor(exponent)
        return float(self.lr * self.gamma**exponent)


@dataclass(frozen=True)
class linear_warmup:
    """``lr(step) = init_lr + (peak_lr - init_lr) * min(step, warmup_steps) / warmup_steps``.

    Linear from ``init_lr`` at step 0 to ``peak_lr`` at step ``warmup_steps``, then constant.
    Join it with a decay (``join([linear_warmup(...), cosine(...)], [warmup_steps])``).
    """

    peak_lr: float
    warmup_steps: int
    init_lr: float = 0.0

    def __post_init__(self) -> None:
        _check_lr("peak_lr", self.peak_lr)
        _check_lr("init_lr", self.init_lr)
        require(self.warmup_steps >= 1, "warmup_steps", ">= 1", self.warmup_steps)

    def __call__(self, step: int) -> float:
        frac = min(step, self.warmup_steps) / self.warmup_steps
        return float(self.init_lr + (self.peak_lr - self.init_lr) * frac)


@dataclass(frozen=True)
class cosine:
    """``lr(step) = final_lr + (lr - final_lr) * (1 + cos(pi * min(step, T) / T)) / 2``,
    with ``T = decay_steps``. It equals
    ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=T, eta_min=final_lr)`` for
    ``step <= T``; afterwards it stays at ``final_lr`` (torch's would rise again).
    """

    lr: float
    decay_steps: int
    final_lr: float = 0.0

    def __post_init__(self) -> None:
        _check_lr("lr", self.lr)
        _check_lr("final_lr", self.final_lr)
        require(self.decay_steps >= 1, "decay_steps", ">= 1", self.decay_steps)

    def __call__(self, step: int) -> float:
        t = min(step, self.decay_steps) / self.decay_steps
        return float(self.final_lr + (self.lr - self.final_lr) * (1 + math.cos(math.pi * t)) / 2)


def _cos_anneal(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


@dataclass(frozen=True)
class one_cycle:
    """The 1cycle policy (Smith & Topin 2017), as ``torch.optim.lr_scheduler.OneCycleLR``
    with ``anneal_strategy='cos'`` and ``three_phase=False``.

    With ``init = max_lr / div_factor``, ``final = init / final_div_factor``,
    ``p = pct_start * total_steps - 1`` and ``anneal(a, b, x) = b + (a - b) (1 + cos(pi x)) / 2``:

    - ``step <= p``: ``anneal(init, max_lr, step / p)`` (warm up to the peak);
    - otherwise: ``anneal(max_lr, final, (step - p) / (total_steps - 1 - p))``.

    Steps past ``total_steps - 1`` stay at ``final`` (torch raises there).
    """

    max_lr: float
    total_steps: int
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4

    def __post_init__(self) -> None:
        _check_lr("max_lr", self.max_lr)
        require(self.total_steps >= 1, "total_steps", ">= 1", self.total_steps)
        require(0 < self.pct_start < 1, "pct_start", "in (0, 1)", self.pct_start)
        require(self.div_factor > 0, "div_factor", "> 0", self.div_factor)
        require(self.final_div_factor > 0, "final_div_factor", "> 0", self.final_div_factor)

    def __call__(self, step: int) -> float:
        init = self.max_lr / self.div_factor
        final = init / self.final_div_factor
        last = self.total_steps - 1
        step = min(step, last)
        peak = float(self.pct_start * self.total_steps) - 1  # torch's phase-1 end step
        if step <= peak:
            start, end, lo, hi = init, self.max_lr, 0.0, peak
        else:
            start, end, lo, hi = self.max_lr, final, peak, float(last)
        # A zero-length phase (tiny total_steps) would divide by zero in torch; take its end.
        pct = (step - lo) / (hi - lo) if hi > lo else 1.0
        return float(_cos_anneal(start, end, pct))


@dataclass(frozen=True)
class join:
    """Run schedules one after another (optax ``join_schedules``).

    ``lr(step) = schedules[i](step - boundaries[i-1])`` for ``boundaries[i-1] <= step <
    boundaries[i]`` (with ``boundaries[-1] = 0``): each schedule starts from its own step 0.
    """

    schedules: Sequence[Schedule]
    boundaries: Sequence[int]

    def __post_init__(self) -> None:
        # Tuples keep the dataclass hashable and immutable whatever sequence was passed.
        object.__setattr__(self, "schedules", tuple(self.schedules))
        object.__setattr__(self, "boundaries", tuple(self.boundaries))
        n = len(self.schedules)
        require(n >= 1, "schedules", "a non-empty sequence", self.schedules)
        require(
            len(self.boundaries) == n - 1,
            "boundaries",
            f"of length len(schedules) - 1 = {n - 1}",
            self.boundaries,
        )
        ok = all(b > 0 for b in self.boundaries) and all(
            a < b for a, b in zip(self.boundaries, self.boundaries[1:], strict=False)
        )
        require(ok, "boundaries", "strictly increasing and > 0", self.boundaries)

    def __call__(self, step: int) -> float:
        offset = 0
        for schedule, boundary in zip(self.schedules, self.boundaries, strict=False):
            if step < boundary:
                return float(schedule(step - offset))
            offset = boundary
        return float(self.schedules[-1](step - offset))


class ReduceOnPlateau:
    """Scale the learning rate down when a metric stops improving.

    Same decision rule as ``torch.optim.lr_scheduler.ReduceLROnPlateau``, kept in the scale domain
    (start 1.0) so it composes with any schedule. On each ``update(value)``:

    - better if ``value < best * (1 - threshold)`` (rel, min), ``value > best * (1 + threshold)``
      (rel, max), ``value < best - threshold`` (abs, min) or ``value > best + threshold``
      (abs, max);
      then ``best = value`` and the bad-epoch count resets, otherwise it grows by one;
    - during cooldown bad epochs are not counted;
    - when the count exceeds ``patience``: ``scale *= factor`` (only if the change exceeds ``eps``),
      then a cooldown of ``cooldown`` updates starts.

    ``min_lr`` is a floor the optimizer applies to ``lr * scale``.
    """

    def __init__(
        self,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        require(mode in ("min", "max"), "mode", "one of 'min', 'max'", mode)
        require(
            threshold_mode in ("rel", "abs"),
            "threshold_mode",
            "one of 'rel', 'abs'",
            threshold_mode,
        )
        require(0 < factor < 1, "factor", "in (0, 1)", factor)
        require(patience >= 0, "patience", ">= 0", patience)
        require(cooldown >= 0, "cooldown", ">= 0", cooldown)
        require(threshold >= 0, "threshold", ">= 0", threshold)
        require(min_lr >= 0, "min_lr", ">= 0", min_lr)
        require(eps >= 0, "eps", ">= 0", eps)
        self.mode = mode
        self.factor = float(factor)
        self.patience = int(patience)
        self.threshold = float(threshold)
        self.threshold_mode = threshold_mode
        self.cooldown = int(cooldown)
        self.min_lr = float(min_lr)
        self.eps = float(eps)
        self.scale = 1.0
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.num_updates = 0

    def __repr__(self) -> str:
        return (
            f"ReduceOnPlateau(mode={self.mode!r}, factor={self.factor}, patience={self.patience}, "
            f"threshold={self.threshold}, threshold_mode={self.threshold_mode!r}, "
            f"cooldown={self.cooldown}, min_lr={self.min_lr}, eps={self.eps}, scale={self.scale})"
        )

    def is_better(self, value: float, best: float) -> bool:
        if self.threshold_mode == "rel":
            if self.mode == "min":
                return value < best * (1.0 - self.threshold)
            return value > best * (1.0 + self.threshold)
        if self.mode == "min":
            return value < best - self.threshold
        return value > best + self.threshold

    def update(self, value: float) -> float:
        """Feed one metric value; return the current scale."""
        value = float(value)  # accepts 0-d tensors and numpy scalars
        self.num_updates += 1
        if self.is_better(value, self.best):
            self.best = value
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            new = self.scale * self.factor
            if self.scale - new > self.eps:
                self.scale = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        return self.scale

    _KEYS = (
        "mode",
        "factor",
        "patience",
        "threshold",
        "threshold_mode",
        "cooldown",
        "min_lr",
        "eps",
        "scale",
        "best",
        "num_bad_epochs",
        "cooldown_counter",
        "num_updates",
    )

    def state_dict(self) -> dict[str, Any]:
        """Configuration and progress as plain Python values (floats may be +-inf)."""
        return {key: getattr(self, key) for key in self._KEYS}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = [key for key in self._KEYS if key not in state]
        if missing:
            raise ValueError(f"ReduceOnPlateau state is missing keys {missing}")
        # Re-run the constructor's validation on the stored configuration before taking it.
        config = ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown")
        type(self)(**{key: state[key] for key in (*config, "min_lr", "eps")})
        for key in self._KEYS:
            setattr(self, key, state[key])
