"""``nnopt bench``: the optimizer step benchmark from the command line."""

from __future__ import annotations

import argparse

from nnopt.bench.choices import DEFAULT, SHAPES


def optimizer_name(name: str) -> str:
    """An ``--optimizers`` value, checked against the table only when one is given.

    (``choices=`` would need the table, so torch, to build the parser of every command.)
    """
    from nnopt.bench.step import OPTIMIZERS

    if name not in OPTIMIZERS:
        raise argparse.ArgumentTypeError(f"{name!r} is not one of: {' '.join(OPTIMIZERS)}")
    return name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options (shared by ``nnopt bench`` and benchmarks/optimizer_step.py)."""
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (about 20 s)")
    parser.add_argument(
        "--optimizers",
        nargs="+",
        type=optimizer_name,
        default=list(DEFAULT),
        metavar="NAME",
        help="optimizers to time: recipe names (a wrong one lists them; "
        f"default: {' '.join(DEFAULT)})",
    )
    parser.add_argument(
        "--shapes",
        nargs="+",
        choices=list(SHAPES),
        default=list(SHAPES),
        metavar="SHAPE",
        help=f"tensors x elements, of: {' '.join(SHAPES)} (default: all)",
    )
    parser.add_argument("--repeats", type=int, default=None, help="steps timed per variant")
    parser.add_argument("--json", metavar="PATH", help="also save the results as JSON")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print the table; return the exit status."""
    from nnopt.bench import step
    from nnopt.console import console as make_console

    console = make_console()
    meta = step.metadata()
    console.print(
        f"torch {meta['torch']}, {meta['machine']}, {meta['threads']} threads, {meta['date']}"
    )
    with console.status("timing") as status:
        results = step.run(
            args.optimizers,
            args.shapes,
            quick=args.quick,
            repeats=args.repeats,
            progress=lambda what: status.update(f"timing {what}"),
        )
    console.print(step.table(results))
    if args.markdown:
        console.print(step.markdown(results), markup=False, highlight=False)
    if args.json:
        step.save_json(results, args.json)
        console.print(f"saved {args.json}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench`` subcommand to the ``nnopt`` command line."""
    parser = subparsers.add_parser(
        "bench",
        help="time optimizer steps against torch.optim and the memory floor",
        description="Time one optimizer step of each nnopt optimizer against its torch.optim "
        "twin (and another package's implementation, where there is one) on parameter sets of "
        "several shapes, and against the memory floor (the bytes a step must move over the "
        "memory bandwidth).",
    )
    add_arguments(parser)
    parser.set_defaults(run=run)
