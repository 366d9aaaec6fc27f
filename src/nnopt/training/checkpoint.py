"""The state of a run, and the checkpoints that hold it: written atomically, resumed exactly."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from nnopt import atomic

CHECKPOINT_NAME = "checkpoint.pt"
# 2: the run state under "run". 1 had its fields at the top level, the loss window as a pair.
CHECKPOINT_FORMAT = 2


@dataclass
class RunState:
    """Where a run is: what the loop carries from step to step, saved in every checkpoint.

    Beside it a checkpoint holds the model, the optimizer (schedule step and plateau state
    included) and every RNG; the data order needs nothing saved, it is a function of the step.
    """

    step: int = 0  # optimizer steps taken
    history: list[dict[str, Any]] = field(default_factory=list)  # one metrics row per evaluation
    elapsed: float = 0.0  # wall time over every resumption, as of the last save
    loss_sum: float = 0.0  # training losses since the last evaluation...
    loss_count: int = 0  # ...and how many there were

    def add_loss(self, loss: float) -> None:
        self.loss_sum += loss
        self.loss_count += 1

    def take_train_loss(self) -> float:
        """The mean training loss since the last evaluation (NaN if none), starting a new one."""
        mean = self.loss_sum / self.loss_count if self.loss_count else math.nan
        self.loss_sum, self.loss_count = 0.0, 0
        return mean

    def to_checkpoint(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_checkpoint(cls, payload: dict[str, Any]) -> RunState:
        if payload.get("format", 1) == 1:
            loss_sum, loss_count = payload["window"]
            run = {**payload, "loss_sum": loss_sum, "loss_count": loss_count}
        else:
            run = payload["run"]
        return cls(**{f.name: run[f.name] for f in fields(cls)})


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Readers (and a resumed run) see the previous checkpoint or this one, never half of it."""
    atomic.save_torch(path, payload)


def load_checkpoint(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    # weights_only=False: the payload holds NumPy's and Python's RNG states, written by us.
    return torch.load(path, map_location="cpu", weights_only=False)
