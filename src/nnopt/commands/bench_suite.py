"""`nnopt bench-suite`: every optimizer of the table on the workload suite, AlgoPerf-scored."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from nnopt import atomic
from nnopt.commands.executor_options import add_executor_arguments, executor_of
from nnopt.console import console as make_console

PLAN = "suite-plan.json"  # the settings a suite directory was started with


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench-suite",
        help="tune every optimizer on the workload suite; performance profile and scores",
        description="Every optimizer of the table, tuned with the same budget on each workload "
        "(MNIST-1D CNN, digits ResNet, character transformer, a generated regression, and yours "
        "with --add), timed to each workload's fixed validation target; writes suite.md, "
        "suite.json and the performance profile to --out.",
    )
    parser.add_argument("--quick", action="store_true",
                        help="short runs, budget 4, 1 seed (its own targets; minutes)")  # fmt: skip
    parser.add_argument("--budget", type=int, help="trials per optimizer (default 8; quick 4)")
    parser.add_argument("--seeds", type=int, help="evaluation seeds (default 3; quick 1)")
    parser.add_argument(
        "--optimizers", nargs="+", default=[], metavar="NAME", help="default: every one"
    )
    parser.add_argument(
        "--add", action="append", default=[], metavar="RECIPE[=TARGET]",
        help="a workload of yours, with its validation target (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--set-targets", action="store_true",
        help="run the seed's optimizers and store each workload's target in the suite file",
    )  # fmt: skip
    parser.add_argument("--out", help="output directory (default: runs/bench-suite[-quick])")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (default 1)")
    add_executor_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from nnopt.errors import UsageError
    from nnopt.experiments import suite
    from nnopt.experiments.live import CompareProgress
    from nnopt.experiments.suite_report import write
    from nnopt.outputs import named_output, output_dir

    console = make_console()
    executor = executor_of(args)  # (checked before anything runs)
    settings = suite.QUICK if args.quick else suite.FULL
    for flag, value in (("--budget", args.budget), ("--seeds", args.seeds)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be >= 1, got {value}")
    settings = replace(settings, budget=args.budget or settings.budget,
                       seeds=args.seeds or settings.seeds)  # fmt: skip
    if args.set_targets:
        optimizers = [n for n in suite.SEED_OPTIMIZERS if n in suite.table.NAMES]
    else:
        optimizers = suite.check_optimizers(args.optimizers)
    workloads = suite.load_workloads(settings, args.add)
    # --set-targets and the suite share a directory: the reference optimizers' runs are the
    # suite's own runs of them, picked up rather than run twice.
    plan = json.dumps(settings.__dict__)

    def same(directory: Path) -> bool:
        return (directory / PLAN).is_file() and (directory / PLAN).read_text() == plan

    out = output_dir(args.out or named_output(f"bench-suite-{settings.name}", same))
    atomic.write_text(out / PLAN, plan)
    total = len(workloads) * len(optimizers) * (settings.budget + settings.seeds)
    started = time.monotonic()
    with CompareProgress(console, total, quiet=args.quiet) as progress:
        result = suite.run_suite(settings, workloads, optimizers, out, jobs=args.jobs,
                                 on_event=progress.on_event, executor=executor)  # fmt: skip
    wall = time.monotonic() - started
    if args.set_targets:
        targets = suite.targets_from(result)
        suite.write_targets(settings, targets)
        for workload, value in targets.items():
            console.print(f"{workload}: target {value:.4g} ({result.metrics[workload]})")
        console.print(f"stored in {suite.SUITE}", highlight=False)
        return 0
    command = "nnopt " + " ".join(sys.argv[1:]) if sys.argv[1:] else "nnopt bench-suite"
    files = write(result, out, command, wall)
    console.print(files["suite.md"].read_text(), highlight=False, markup=False)
    return 0
