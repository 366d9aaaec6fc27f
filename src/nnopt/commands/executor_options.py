"""``--executor``, ``--address``, ``--cpus-per-run``: where a command's runs execute, the same
options for every command that submits runs (``compare``, ``bench-suite``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nnopt.experiments.executors import Executor


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--executor", default="local", metavar="{local,ray}",
        help="where runs execute: local processes (default) or one Ray task per run "
        "(pip install 'nnopt[ray]'; docs/scale.md)",
    )  # fmt: skip
    parser.add_argument(
        "--address", help="with --executor ray: the cluster to join (default: RAY_ADDRESS, "
        "else a local cluster)",
    )  # fmt: skip
    parser.add_argument(
        "--cpus-per-run", type=int, help="with --executor ray: cores (and threads) per run "
        "(default 1)",
    )  # fmt: skip


def executor_of(args: argparse.Namespace) -> Executor:
    """The executor the options name, checked before any run starts."""
    from nnopt.experiments.executors import make_executor

    return make_executor(args.executor, address=args.address, cpus_per_run=args.cpus_per_run)
