"""The CLI's subcommands, one module each; what they share."""

from __future__ import annotations

from pathlib import Path

from nnopt.errors import UserError


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
