"""Checkpoints that are written atomically and resume a run exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nnopt import atomic

CHECKPOINT_NAME = "checkpoint.pt"


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Readers (and a resumed run) see the previous checkpoint or this one, never half of it."""
    atomic.save_torch(path, payload)


def load_checkpoint(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    # weights_only=False: the payload holds NumPy's and Python's RNG states, written by us.
    return torch.load(path, map_location="cpu", weights_only=False)
