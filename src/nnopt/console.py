"""The terminal output of the CLI (rich), wide enough for its tables when piped."""

from __future__ import annotations

import sys

from rich.console import Console


def console() -> Console:
    """A rich console; 240 columns when stdout is not a terminal (logs, CI, `| tee`).

    rich falls back to 80 columns off a terminal, which would squeeze the comparison and
    benchmark tables into unreadable, truncated cells; a comparison with ``--target`` has nine
    columns, about 190 wide (a table takes only the width it needs).
    """
    return Console() if sys.stdout.isatty() else Console(width=240)
