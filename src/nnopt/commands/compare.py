"""`nnopt compare RECIPE [RECIPE ...]`: every variant over several seeds, a table and a report."""

from __future__ import annotations

import argparse

from nnopt.commands import output_dir
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
    from nnopt.experiments.compare import (
        expand_variants,
        run_comparison,
        summarize,
        write_summaries,
    )
    from nnopt.experiments.figures import comparison_plots
    from nnopt.experiments.live import CompareProgress
    from nnopt.experiments.report import rich_table, write_reports
    from nnopt.optim.kernels import cpu
    from nnopt.recipe import Recipe

    console = make_console()
    recipes = [Recipe.load(path).with_overrides(args.overrides) for path in args.recipes]
    variants = expand_variants(recipes, args.vary)
    out = output_dir(args.out)
    total = len(variants) * args.seeds
    cpu.available()  # build the kernels once, here, not in each of --jobs workers at once
    with CompareProgress(console, total, quiet=args.quiet) as progress:
        records = run_comparison(
            variants, args.seeds, out, jobs=args.jobs, on_event=progress.on_event
        )
    stats, metric = summarize(records, args.target)
    files = write_summaries(out, records, stats)
    by_variant: dict = {}
    for record in records:
        by_variant.setdefault(record.variant, []).append(record)
    plots = comparison_plots(by_variant, metric, out / "plots")
    title = f"nnopt compare: {', '.join(variants)}"
    recipes_text = {name: recipe.to_toml() for name, recipe in variants.items()}
    md, html = write_reports(out, title, stats, args.target, plots, recipes_text, args.seeds)
    label = stats[0].label if stats else metric
    console.print(rich_table(stats, args.target, f"{label} over {args.seeds} seeds"))
    console.print(f"report: {html}  (also {md}, {files['summary.csv']})")
    return 0
