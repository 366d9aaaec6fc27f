"""Recipe: the validated, immutable description of one training run."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

import torch
from pydantic import Field, ValidationError, model_validator

from nnopt import atomic
from nnopt.data.batches import Batches, BatchSizeTooLarge
from nnopt.errors import RecipeError
from nnopt.recipe.errors import from_validation
from nnopt.recipe.fields import Section, problem
from nnopt.recipe.io import dump_toml, parse_toml, read_text
from nnopt.recipe.overrides import apply_overrides
from nnopt.recipe.schedule import ScheduleSpec
from nnopt.recipe.schema import (
    DataSpec,
    ModelSpec,
    OptimizerSpec,
    PlateauSpec,
    RegularizationSpec,
    TrainSpec,
)
from nnopt.schedules import Schedule


class Recipe(Section):
    """A training run as data: data, model, optimizer, schedule, regularization, training.

    Build one with :meth:`load` (a TOML file), :meth:`loads` (TOML text) or :meth:`from_dict`;
    every problem is reported as a :class:`RecipeError` with one line per field.
    """

    name: str = Field("run", min_length=1)
    seed: int = Field(0, ge=0)
    data: DataSpec
    model: ModelSpec = Field(default_factory=ModelSpec)
    optimizer: OptimizerSpec
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    plateau: PlateauSpec | None = None
    regularization: RegularizationSpec = Field(default_factory=RegularizationSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    # `nnopt compare --tune`: this variant's narrower ranges of the declared space,
    # e.g. {"optimizer.lr" = "log:1e-3:1e-1"} (nnopt.experiments.space); a run ignores it.
    tune: dict[str, str] | None = None

    @model_validator(mode="after")
    def _optimizer_accepts(self) -> Recipe:
        """What the schema lets through, the optimizer must accept as well.

        Its constructor raises ValueError for a bad hyperparameter (as torch's do); asked here,
        on one tensor, a recipe fails when it is loaded, with the field named, rather than when
        the run starts, as an error that reads like a bug.
        """
        row, options = self.optimizer.resolved()
        reg = self.regularization
        group: dict[str, Any] = {
            "params": [torch.zeros(1, 1, requires_grad=True)],  # (Muon: matrices only)
            **{"l1": reg.l1, "l2": reg.l2},
        }
        if reg.weight_decay is not None:
            group |= {"weight_decay": reg.weight_decay, "decoupled_weight_decay": True}
        # flat=False unless the recipe sets it: one tensor needs no packing, only the
        # hyperparameters are asked (and flat=True with compact storage, refused here)
        try:
            row.build([group], self.optimizer.lr, **{"flat": False, **options})
        except ValueError as exc:
            # nnopt's sentence alone: torch's words for the same mistake add nothing here
            plain = getattr(exc, "plain", str(exc))
            raise problem(self._field_line(plain, getattr(exc, "option", ""))) from None
        return self

    @model_validator(mode="after")
    def _one_decay(self) -> Recipe:
        """[optimizer] weight_decay is the run's whole decay: with [regularization]'s too, the
        two would add up silently (coupled L2 twice, or two decoupled decays)."""
        decay, reg = self.optimizer.weight_decay, self.regularization
        other = "weight_decay" if reg.weight_decay is not None else "l2" if reg.l2 > 0 else None
        if decay is None or other is None:
            return self
        row, _ = self.optimizer.resolved()
        probe = row.build([torch.zeros(1, 1, requires_grad=True)], 0.1, flat=False)
        kind = "decoupled" if probe.defaults.get("decoupled_weight_decay") else "coupled L2"
        theirs = "decoupled decay" if other == "weight_decay" else "coupled L2"
        raise problem(
            f"optimizer.weight_decay and regularization.{other} are both set; keep one: "
            f"optimizer.weight_decay = {decay:g} ({kind} for {row.name}, as in torch.optim) "
            f"or regularization.{other} = {getattr(reg, other):g} ({theirs}, any optimizer)"
        )

    @model_validator(mode="after")
    def _schedule_free_takes_no_schedule(self) -> Recipe:
        """A schedule-free optimizer's average replaces the lr schedule (Defazio et al. 2024)
        and it warms up by itself: a schedule or a plateau cut would fight its averaging."""
        row, _ = self.optimizer.resolved()
        if not getattr(row.cls, "schedule_free", False):
            return self
        why = f"optimizer {row.name!r} is schedule-free: its average replaces the lr schedule"
        if self.schedule.kind != "constant":
            raise problem(f'schedule.kind = "{self.schedule.kind}" cannot be used: {why}; '
                          'leave out [schedule] (kind = "constant")')  # fmt: skip
        if self.schedule.warmup_steps:
            raise problem(f"schedule.warmup_steps cannot be used: {why}; set "
                          f"optimizer.warmup_steps = {self.schedule.warmup_steps} (its own "
                          "warm-up) instead")  # fmt: skip
        if self.plateau is not None:
            raise problem(f"[plateau] cannot be used: {why}; leave out [plateau]")
        return self

    def _field_line(self, message: str, option: str = "") -> str:
        """An optimizer's message (``"momentum must be ..."``) as a recipe line naming the field.

        ``option`` is the name the optimizer's error carries (``OptionError.option``); without
        it the message's first word is taken. ``weight_decay`` is the [optimizer] field when
        the recipe sets it there, else [regularization]'s.
        """
        if not option:
            match = re.match(r"[a-z_0-9]+", message)
            option = match.group(0) if match else ""
        name = option.split("[")[0]
        # "momentum must be ..." reads on as the field's line; other wording gets the field first
        line = message if message.startswith(option) else f"{option}: {message}"
        optimizer_decay = name == "weight_decay" and self.optimizer.weight_decay is not None
        if name in RegularizationSpec.model_fields and not optimizer_decay:
            return f"regularization.{line}"
        if name in OptimizerSpec.model_fields:
            return f"optimizer.{line}"
        return f"optimizer ({self.optimizer.name}): {message}"

    # -- building ----------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        """Validate a plain dict (as TOML parses it)."""
        if not isinstance(data, dict):
            raise RecipeError(f"a recipe must be a table of keys, got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise from_validation(exc, cls) from None

    @classmethod
    def loads(cls, text: str) -> Recipe:
        """A recipe from TOML text."""
        return cls.from_dict(parse_toml(text))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Recipe:
        """A recipe from a TOML file; every error line starts with the file name."""
        data = parse_toml(read_text(path), source=str(path))
        try:
            return cls.from_dict(data)
        except RecipeError as exc:
            raise exc.prefixed(str(path)) from None

    def with_overrides(self, overrides: Iterable[str]) -> Recipe:
        """A new recipe with ``KEY=VALUE`` overrides applied, e.g. ``"optimizer.lr=0.03"``."""
        overrides = list(overrides)
        if not overrides:
            return self
        raw = self.model_dump(exclude_unset=True)
        return self.from_dict(apply_overrides(type(self), raw, overrides))

    # -- writing -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Every field with its resolved value; unset optional values (None) are left out.

        [optimizer] keeps only the options the chosen optimizer has, so the dict loads again.
        """
        out = self.model_dump(exclude_none=True)
        out["optimizer"] = {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in out["optimizer"].items()
            if self.optimizer.applies(k)
        }
        return out

    def to_toml(self) -> str:
        """The resolved recipe as TOML; ``Recipe.loads(r.to_toml()) == r``."""
        return dump_toml(self.to_dict())

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_toml` to ``path`` atomically (temp file, then rename)."""
        atomic.write_text(path, self.to_toml())

    # -- resolving against the data ----------------------------------------------------------

    def batches(self, n_train: int) -> Batches:
        """The run's index batches over ``n_train`` samples: ``train.mode``, seeded by ``seed``."""
        if n_train < 1:
            raise RecipeError(f"the training set is empty (n_train = {n_train})")
        train = self.train
        try:
            return Batches(n_train, mode=train.mode, batch_size=train.batch_size, seed=self.seed)
        except BatchSizeTooLarge:
            raise RecipeError(
                f"train.batch_size ({train.batch_size}) is larger than the training set "
                f"({n_train} samples); lower it or use train.mode = 'batch'"
            ) from None

    def steps_over(self, batches: Batches) -> int:
        """``train.steps``, else epochs (default 10) times the batches in one epoch."""
        if self.train.steps is not None:
            return self.train.steps
        return (self.train.epochs or TrainSpec.DEFAULT_EPOCHS) * batches.batches_per_epoch

    def lr_schedule(self, total_steps: int) -> Schedule | float:
        """[schedule] from ``optimizer.lr`` over a run of ``total_steps``: a ``step -> lr``
        callable, or the constant lr."""
        return self.schedule.build(self.optimizer.lr, total_steps)

    def total_steps(self, n_train: int) -> int:
        """:meth:`steps_over` the batches of ``n_train`` samples."""
        return self.steps_over(self.batches(n_train))

    def resolved_batch_size(self, n_train: int) -> int:
        """Samples per step: all of them (batch), one (stochastic) or ``train.batch_size``."""
        return self.batches(n_train).batch_size
