"""`nnopt compare RECIPE [RECIPE ...]`: every variant over several seeds, a table and a report."""

from __future__ import annotations

import argparse

from nnopt.console import console as make_console


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
    parser.add_argument("--out", default="runs/compare", help="output directory")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel processes")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from nnopt.experiments.api import compare
    from nnopt.experiments.compare import expand_variants
    from nnopt.experiments.live import CompareProgress
    from nnopt.experiments.report import rich_table
    from nnopt.recipe import Recipe

    console = make_console()
    recipes = [Recipe.load(path).with_overrides(args.overrides) for path in args.recipes]
    total = len(expand_variants(recipes, args.vary)) * args.seeds  # (and checks --vary)
    with CompareProgress(console, total, quiet=args.quiet) as progress:
        result = compare(
            recipes, seeds=args.seeds, vary=args.vary, target=args.target, out=args.out,
            jobs=args.jobs, on_event=progress.on_event,
        )  # fmt: skip
    title = f"{result.label} over {args.seeds} seeds"
    table, left_out = rich_table(result.stats, args.target, title, console)
    console.print(table)
    files = result.files
    # Short: a narrow terminal wraps a long line as badly as a wide table.
    full = f"; {left_out} more columns in report.md" if left_out else ""
    console.print(f"report: {files['report.html']}", highlight=False)
    console.print(f"(also report.md and summary.csv there{full})", highlight=False)
    return 0
