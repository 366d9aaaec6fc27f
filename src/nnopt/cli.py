"""The `nnopt` command line: train | compare | lr-find | bench | datasets.

User errors (`nnopt.errors.UserError`: a bad recipe, a missing file, a bad value) end with
exit status 2 and their message on stderr; set NNOPT_DEBUG=1 to see the traceback instead.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable

from nnopt import __version__
from nnopt.errors import UserError

# Each subcommand module has register(subparsers) that adds its parser with a `run` default.
SUBCOMMANDS = (
    "nnopt.commands.train",
    "nnopt.commands.compare",
    "nnopt.commands.lr_find",
    "nnopt.commands.datasets",
    "nnopt.bench.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnopt", description="Train neural networks with well-chosen optimization."
    )
    parser.add_argument("--version", action="version", version=f"nnopt {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] | None = getattr(args, "run", None)
    if run is None:
        parser.print_help()
        return 0
    try:
        return run(args)
    except KeyboardInterrupt:
        print("nnopt: interrupted", file=sys.stderr)
        return 130
    except UserError as error:
        if os.environ.get("NNOPT_DEBUG"):
            raise
        print(f"nnopt {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
