"""What a training run gives back, and the hook it calls after every step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

# on_step(step, total steps, metrics row of that step or None, the held-out split's name)
StepHook = Callable[[int, int, "dict[str, Any] | None", str], None]


@dataclass
class Result:
    """What a run produced: one row per evaluation and the summary written to summary.json."""

    history: list[dict[str, Any]]
    summary: dict[str, Any]
    run_dir: Path | None = None
    model: torch.nn.Module | None = field(default=None, repr=False)

    @property
    def diverged(self) -> bool:
        return self.summary.get("status") == "diverged"
