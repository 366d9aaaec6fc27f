"""The `nnopt` command line."""

from __future__ import annotations

import argparse
import sys

from nnopt import __version__
from nnopt.bench import cli as bench_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnopt", description=__doc__)
    parser.add_argument("--version", action="version", version=f"nnopt {__version__}")
    commands = parser.add_subparsers(dest="command")
    bench_cli.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
