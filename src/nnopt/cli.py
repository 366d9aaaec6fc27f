"""The `nnopt` command line: train | compare | lr-find | bench | datasets.

Every failure ends in one readable line or, for a bug, a traceback (see ``nnopt.errors``):
user errors exit 2, errors of the machine (disk full, read-only, permissions) exit 1, bugs
exit 70 with a request to report them. ``--debug`` or NNOPT_DEBUG=1 shows every traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Callable

from nnopt import __version__
from nnopt.errors import UserError, describe

# Each subcommand module has register(subparsers) that adds its parser with a `run` default.
SUBCOMMANDS = (
    "nnopt.commands.train",
    "nnopt.commands.compare",
    "nnopt.commands.lr_find",
    "nnopt.commands.datasets",
    "nnopt.commands.bench_suite",
    "nnopt.bench.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnopt", description="Train neural networks with well-chosen optimization."
    )
    parser.add_argument("--version", action="version", version=f"nnopt {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of every error (NNOPT_DEBUG=1)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        importlib.import_module(module).register(subparsers)
    for command in subparsers.choices.values():
        # `nnopt train X --debug` as well as `nnopt --debug train X`; SUPPRESS: unless given
        # here, the subcommand leaves the value the main parser set.
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show the traceback of every error (NNOPT_DEBUG=1)")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] | None = getattr(args, "run", None)
    if run is None:
        parser.print_help()
        return 0
    debug = args.debug or bool(os.environ.get("NNOPT_DEBUG"))
    try:
        return run(args)
    except KeyboardInterrupt as stop:  # (an Interrupted run says where, and what was kept)
        print(f"nnopt {args.command}: {stop or 'interrupted'}", file=sys.stderr)
        return 130
    except UserError as error:
        if debug:
            raise
        print(f"nnopt {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        if debug:
            raise
        print(f"nnopt {args.command}: error: {describe(error)}", file=sys.stderr)
        return 1
    except Exception:
        if debug:
            raise
        traceback.print_exc()
        print(
            f"nnopt {args.command}: internal error: this is a bug in nnopt (or in code a "
            "recipe names); please report it with the traceback above and the command you ran",
            file=sys.stderr,
        )
        return 70


if __name__ == "__main__":
    sys.exit(main())
