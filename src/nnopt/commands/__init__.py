"""The CLI's subcommands, one module each; what they share (where outputs go: ``nnopt.outputs``)."""

from __future__ import annotations

import sys
from pathlib import Path


def command_name() -> str:
    """How this command was invoked, for a line that tells the user what to type next:
    ``.venv/bin/nnopt`` as typed, or ``/path/to/python -m nnopt``."""
    typed = sys.argv[0] if sys.argv else ""
    return typed if Path(typed).name == "nnopt" else f"{sys.executable} -m nnopt"
