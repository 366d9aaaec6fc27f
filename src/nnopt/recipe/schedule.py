"""``[schedule]``: the recipe's learning rate over the steps, and the one table of its kinds.

Each kind is one row of :data:`KINDS`: the fields it reads and how its schedule is made from
them. The schema's allowed kinds, a report's unused fields and the schedule a run steps with all
come from that row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from nnopt import schedules
from nnopt.recipe.fields import Section, problem
from nnopt.schedules import Schedule

# A kind's schedule after any warm-up, from its [schedule] fields, the peak lr and the run's
# total steps (what decay_steps means when unset).
Build = Callable[["ScheduleSpec", float, int], Schedule | float]


def _horizon(spec: ScheduleSpec, total_steps: int) -> int:
    """decay_steps, else what the run has left after the warm-up."""
    return spec.decay_steps or max(total_steps - spec.warmup_steps, 1)


# kind -> (the fields it reads, its schedule). A kind that reads warmup_steps gets a linear
# warm-up to lr joined before its schedule; a constant lr without one stays a plain float (the
# optimizer then steps with no schedule at all).
KINDS: dict[str, tuple[tuple[str, ...], Build]] = {
    "constant": (
        ("warmup_steps",),
        lambda s, lr, total: schedules.constant(lr) if s.warmup_steps else lr,
    ),
    "step": (
        ("step_size", "gamma", "warmup_steps"),
        lambda s, lr, total: schedules.step_decay(lr, s.step_size or 1, s.gamma or 0.1),
    ),
    "exponential": (
        ("gamma", "decay_steps", "warmup_steps"),
        lambda s, lr, total: schedules.exponential_decay(
            lr, s.gamma or 1.0, decay_steps=s.decay_steps or 1
        ),
    ),
    "cosine": (
        ("decay_steps", "final_lr", "warmup_steps"),
        lambda s, lr, total: schedules.cosine(lr, _horizon(s, total), final_lr=s.final_lr),
    ),
    "warmup_cosine": (
        ("decay_steps", "final_lr", "warmup_steps"),
        lambda s, lr, total: schedules.cosine(lr, _horizon(s, total), final_lr=s.final_lr),
    ),
    "one_cycle": (
        ("decay_steps", "pct_start"),
        lambda s, lr, total: schedules.one_cycle(lr, s.decay_steps or total, pct_start=s.pct_start),
    ),
}


class ScheduleSpec(Section):
    """``[schedule]``: the learning rate as a function of the step.

    ``decay_steps`` unset means the run's total steps (less the warm-up); ``gamma`` unset with
    ``kind = "step"`` means 0.1.
    """

    kind: Literal[*KINDS] = "constant"  # type: ignore[valid-type]
    step_size: int | None = Field(None, ge=1)
    gamma: float | None = Field(None, gt=0, le=1)
    decay_steps: int | None = Field(None, ge=1)
    warmup_steps: int = Field(0, ge=0)
    final_lr: float = Field(0.0, ge=0)
    pct_start: float = Field(0.3, gt=0, lt=1)

    # The fields each kind reads: the others do nothing for it.
    USES: ClassVar[dict[str, tuple[str, ...]]] = {kind: row[0] for kind, row in KINDS.items()}

    def unused_fields(self) -> tuple[str, ...]:
        """Fields that do nothing for this kind of schedule (a report leaves them out)."""
        return tuple(
            f for f in type(self).model_fields if f != "kind" and f not in self.USES[self.kind]
        )

    def build(self, lr: float, total_steps: int) -> Schedule | float:
        """The schedule as a ``step -> lr`` callable (or the constant lr) for a run of
        ``total_steps`` peaking at ``lr``."""
        uses, made = KINDS[self.kind]
        main = made(self, lr, total_steps)
        warmup = self.warmup_steps if "warmup_steps" in uses else 0
        if not warmup:
            return main
        assert not isinstance(main, float)  # (a constant with a warm-up is a schedule)
        return schedules.join([schedules.linear_warmup(lr, warmup), main], [warmup])

    @model_validator(mode="after")
    def _kind_needs(self) -> ScheduleSpec:
        kind = self.kind
        if kind == "step" and self.step_size is None:
            raise problem("schedule.step_size is required when schedule.kind = 'step'")
        if kind == "exponential" and self.gamma is None:
            raise problem("schedule.gamma is required when schedule.kind = 'exponential'")
        if kind == "warmup_cosine" and self.warmup_steps < 1:
            raise problem(
                "schedule.warmup_steps must be >= 1 when schedule.kind = 'warmup_cosine', "
                f"got {self.warmup_steps}"
            )
        return self
