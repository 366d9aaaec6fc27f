"""`nnopt compare RECIPE [RECIPE ...]`: every variant over several seeds, a table and a report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from nnopt.commands.executor_options import add_executor_arguments, executor_of
from nnopt.console import console as make_console
from nnopt.wording import counted

if TYPE_CHECKING:
    from rich.console import Console

    from nnopt.experiments.executors import Executor


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare recipes (or variants of one) over several seeds",
        description="Run every recipe, or every variant of one, with N seeds; print the table "
        "and write summary.csv/json, plots, report.md and report.html to --out.",
    )
    parser.add_argument("recipes", nargs="+", help="recipe files (TOML)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per variant (default 3)")
    parser.add_argument(
        "--vary",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="one variant per value, e.g. --vary optimizer.name=sgd,adam (repeatable: product)",
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a field in every recipe (repeatable)",
    )  # fmt: skip
    parser.add_argument("--target", type=float, help="report steps and time to reach this metric")
    parser.add_argument(
        "--out",
        help="output directory (default: runs/compare-NAME, NAME the recipes' names; the same "
        "command again picks it up, another comparison gets runs/compare-NAME-2)",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="runs at once, each in its own process (default 1)"
    )
    parser.add_argument(
        "--tune", action="append", default=[], metavar="KEY=RANGE",
        help="tune every variant over this dimension with the same budget: KEY=log:LO:HI, "
        "KEY=LO:HI or KEY=V1,V2 (repeatable); trials are scored on a validation split, the "
        "chosen point is tested on --seeds fresh seeds",
    )  # fmt: skip
    parser.add_argument(
        "--budget", type=int, default=0, help="trials per variant with --tune (the same for all)"
    )
    add_executor_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from nnopt.experiments.api import compare
    from nnopt.experiments.compare import default_out, expand_variants, finished_runs
    from nnopt.experiments.live import CompareProgress
    from nnopt.experiments.report import rich_table
    from nnopt.recipe import Recipe

    console = make_console()
    executor = executor_of(args)
    recipes = [Recipe.load(path).with_overrides(args.overrides) for path in args.recipes]
    variants = expand_variants(recipes, args.vary)  # (and checks --vary)
    if args.tune or args.budget:
        return _run_tuned(args, recipes, variants, console, executor)
    total = len(variants) * args.seeds
    out = Path(args.out) if args.out else default_out(variants)
    found = finished_runs(variants, args.seeds, out) if out.is_dir() else 0
    if found:
        left = f"{total - found} to run" if found < total else "nothing left to run"
        console.print(
            f"read back {counted(found, 'finished run')} from {out}; {left}", highlight=False
        )
    try:
        with CompareProgress(console, total, quiet=args.quiet) as progress:
            result = compare(
                recipes, seeds=args.seeds, vary=args.vary, target=args.target, out=out,
                jobs=args.jobs, on_event=progress.on_event, executor=executor,
            )  # fmt: skip
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"interrupted; finished runs and the last checkpoint of the others are kept in "
            f"{out}: the same command picks them up"
        ) from None
    title = f"{result.label} over {counted(args.seeds, 'seed')}"
    table, left_out = rich_table(result.stats, args.target, title, console)
    console.print(table)
    files = result.files
    # Short: a narrow terminal wraps a long line as badly as a wide table.
    full = f"; {left_out} more columns in report.md" if left_out else ""
    console.print(f"report: {files['report.html']}", highlight=False)
    console.print(f"(also report.md and summary.csv there{full})", highlight=False)
    return 0


def _run_tuned(
    args: argparse.Namespace, recipes: list, variants: dict, console: Console, executor: Executor
) -> int:
    """``--tune``: the same command, each variant at its own best point (experiments.tuned)."""
    from rich.table import Table

    from nnopt.experiments.api import compare
    from nnopt.experiments.compare import default_out
    from nnopt.experiments.live import CompareProgress
    from nnopt.experiments.tune_report import table, verdicts
    from nnopt.experiments.tuning import prepare

    _, text = prepare(variants, args.tune, args.budget)  # bad input: one line, nothing run
    out = Path(args.out) if args.out else default_out(variants, text)
    total = len(variants) * (args.budget + 2 * args.seeds)
    try:
        with CompareProgress(console, total, quiet=args.quiet) as progress:
            result = compare(
                recipes, seeds=args.seeds, vary=args.vary, target=args.target, out=out,
                jobs=args.jobs, on_event=progress.on_event, tune=args.tune, budget=args.budget,
                executor=executor,
            )  # fmt: skip
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"interrupted; finished trials and runs are kept in {out}: the same command "
            "picks them up"
        ) from None
    from nnopt.experiments.api import Comparison

    assert not isinstance(result, Comparison)  # (tune given: a TunedComparison)
    header, cells = table(result.rows, result.metric, result.held_out, args.target)
    shown = Table(title=f"tuned with {counted(args.budget, 'trial')} each, "
                  f"tested over {counted(args.seeds, 'seed')}")  # fmt: skip
    for name in header:
        shown.add_column(name, justify="left" if name in header[:2] else "right")
    for row in cells:
        shown.add_row(*row)
    console.print(shown)
    for line in verdicts(result.rows, result.best):
        console.print(line, highlight=False)
    console.print(f"report: {result.files.get('tuned.md', out)}", highlight=False)
    return 0
