"""The terminal output of the CLI (rich), wide enough for its tables when piped."""

from __future__ import annotations

import sys

from rich.console import Console


def console() -> Console:
    """A rich console; 160 columns when stdout is not a terminal (logs, CI, `| tee`).

    rich falls back to 80 columns off a terminal, which would squeeze the comparison and
    benchmark tables into unreadable, truncated cells.
    """
    return Console() if sys.stdout.isatty() else Console(width=160)
