"""`nnopt datasets`: the data sets that need no download."""

from __future__ import annotations

import argparse

from rich.table import Table

from nnopt.console import console as make_console


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "datasets",
        help="list the embedded and synthetic data sets",
        description="List the data sets a recipe can name as data.name: the embedded ones "
        "(read locally, no download) and the synthetic ones, with their sizes.",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from nnopt.data import available_datasets

    table = Table(
        title="data sets (no download needed; or pass a .npz/.npy/.csv path, an image folder, "
        "or a data.factory)"
    )
    for column in ("name", "description", "size"):
        table.add_column(column)
    for name, description, size in available_datasets():
        table.add_row(name, description, str(size))
    make_console().print(table)
    return 0
