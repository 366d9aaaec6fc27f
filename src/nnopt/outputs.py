"""Where a command's results go: ``--out`` as given, or ``runs/NAME`` never overwritten.

Below the commands and the experiments alike (both write outputs), beside the atomic writers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nnopt.errors import UserError

RUNS = Path("runs")  # where outputs go when no --out is given


def output_dir(path: str | Path) -> Path:
    """``--out``, created with its parents; a path that cannot be a directory is a UserError."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot use {path} as the output directory: {exc.strerror or exc}"
        ) from exc
    return path


def named_output(name: str, same: Callable[[Path], bool] | None = None) -> Path:
    """The default output of a command: runs/NAME, or runs/NAME-2, -3... so that no earlier
    result is ever overwritten. ``same(directory)`` says whether a directory holds this very
    command's earlier results (an interrupted comparison): that one is picked up instead."""
    base = RUNS / name
    candidate, n = base, 1
    while candidate.exists() and not (same is not None and same(candidate)):
        n += 1
        candidate = base.with_name(f"{name}-{n}")
    return candidate
