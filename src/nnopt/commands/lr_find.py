"""`nnopt lr-find RECIPE`: the learning-rate range test on a recipe's model and data."""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

from nnopt.errors import UsageError
from nnopt.outputs import named_output, output_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "lr-find",
        help="learning-rate range test (Smith 2015)",
        description="Sweep the learning rate exponentially over mini-batches of the recipe's "
        "data and suggest one. Writes lr_find.json and lr_find.png to --out.",
    )
    parser.add_argument("recipe", help="recipe file (TOML)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a recipe field, e.g. --set train.batch_size=64 (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--min-lr", type=float, default=1e-6, help="the sweep's first lr (default 1e-6)"
    )
    parser.add_argument(
        "--max-lr", type=float, default=10.0, help="the sweep's last lr (default 10)"
    )
    parser.add_argument(
        "--steps", type=int, default=100, help="mini-batches in the sweep (default 100)"
    )
    parser.add_argument(
        "--out",
        help="output directory (default: runs/lr-find-NAME, NAME the recipe's name; -2, -3... "
        "when that is taken, so no earlier sweep is overwritten)",
    )
    parser.add_argument(
        "--apply", action="store_true", help="write a copy of the recipe with the suggested lr"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from nnopt import atomic
    from nnopt.experiments.api import lr_find
    from nnopt.recipe import Recipe

    if not 0 < args.min_lr < args.max_lr:
        raise UsageError(f"need 0 < --min-lr < --max-lr, got {args.min_lr:g} and {args.max_lr:g}")
    if args.steps < 2:
        raise UsageError(f"--steps must be >= 2, got {args.steps}")
    recipe = Recipe.load(args.recipe).with_overrides(args.overrides)
    if args.out:
        output_dir(args.out)  # a bad --out is refused before the sweep
    with warnings.catch_warnings():  # (said below, on stdout, as the command's result)
        warnings.filterwarnings("ignore", message="lr_find made no suggestion")
        result = lr_find(recipe, min_lr=args.min_lr, max_lr=args.max_lr, steps=args.steps)
    # The default directory is made only now: a sweep that failed leaves no empty one behind.
    out = output_dir(args.out or named_output(f"lr-find-{recipe.name}"))
    # Which recipe was swept: its name and file, and in full beside it (recipe.toml).
    named = {"recipe": recipe.name, "recipe_file": args.recipe, "overrides": args.overrides}
    recipe.save(out / "recipe.toml")
    atomic.write_text(
        out / "lr_find.json", json.dumps({**named, **result.to_dict()}, indent=2) + "\n"
    )
    result.plot(out / "lr_find.png")
    if result.suggestion is None:
        print(f"no suggestion: {result.reason}")
        return 1
    print(
        f"suggested lr {result.suggestion:.3g} (steepest descent); "
        f"min/10 rule {result.min_over_10:.3g}; {len(result.lrs)} steps"
        + (" (stopped at divergence)" if result.stopped_early else "")
    )
    print(f"wrote {out / 'lr_find.json'} and {out / 'lr_find.png'}")
    if args.apply:
        applied = recipe.with_overrides([f"optimizer.lr={result.suggestion!r}"])
        target = out / f"{Path(args.recipe).stem}.lr_found.toml"
        applied.save(target)
        print(f"wrote {target} with optimizer.lr = {result.suggestion:.3g}")
    return 0
