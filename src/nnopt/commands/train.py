"""`nnopt train RECIPE`: train one recipe, or resume a run directory."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from nnopt.commands import command_name
from nnopt.errors import Interrupted, UsageError, UserError
from nnopt.outputs import named_output, output_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a recipe file",
        description="Train a recipe. Outputs go to --out (default runs/NAME): recipe.toml, "
        "metrics.csv, summary.json, checkpoint.pt.",
    )
    parser.add_argument("recipe", nargs="?", help="recipe file (TOML)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe field, e.g. --set optimizer.lr=0.03 (repeatable)",
    )
    parser.add_argument("--out", help="run directory (default: runs/<recipe name>)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="with --resume: load a checkpoint written by an older nnopt (format 3 or earlier) "
        "with pickle, which can run code, and rewrite it as a plain one; only for files you "
        "wrote (without it every checkpoint loads as tensors and plain values only)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def run(args: argparse.Namespace) -> int:
    from nnopt.distributed.context import teardown
    from nnopt.recipe import Recipe
    from nnopt.training import train
    from nnopt.training.checkpoint import CHECKPOINT_NAME

    if args.trust_checkpoint and not args.resume:
        raise UsageError("--trust-checkpoint applies to a resume: --resume RUN_DIR")
    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / CHECKPOINT_NAME).is_file():
            raise UserError(f"{run_dir} has no {CHECKPOINT_NAME} to resume from")
        # --set on a resume changes those fields on purpose (extending train.steps, say); the
        # run's recipe.toml and checkpoints record the change.
        recipe = Recipe.load(args.recipe or run_dir / "recipe.toml").with_overrides(args.overrides)
        changed = tuple(item.partition("=")[0].strip() for item in args.overrides)
        resume = True
    else:
        if not args.recipe:
            raise UserError("give a recipe file (or --resume RUN_DIR)")
        recipe = Recipe.load(args.recipe).with_overrides(args.overrides)
        if not args.out and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            # Each rank would pick its own fresh runs/NAME-k: they must all name one directory.
            raise UserError("under torchrun, give --out RUN_DIR: every rank must write one run")
        run_dir = Path(args.out) if args.out else named_output(recipe.name)
        if (run_dir / CHECKPOINT_NAME).exists():
            raise UserError(f"{run_dir} already holds a run; use --resume {run_dir} or --out")
        resume, changed = False, ()
        output_dir(run_dir)
    say = print if is_main_process() else None
    try:
        result = train(recipe, run_dir, resume=resume, quiet=args.quiet, changed=changed,
                       trust_checkpoint=args.trust_checkpoint, say=say)  # fmt: skip
    except Interrupted as stop:  # the exact command that continues the run
        resume_with = f"{command_name()} train --resume {run_dir}"
        raise Interrupted(stop.step, stop.kept, resume_with) from None
    finally:
        teardown()
    from nnopt.names import VALIDATION, metric_text

    summary = result.summary
    if result.diverged:  # the recipe's to change (its lr, say): a user error's status
        if is_main_process():
            print(f"nnopt train: error: {summary['message']}", file=sys.stderr)
        return 2
    final = summary["final"]
    parts = [f"{summary['status']} after {summary['steps']} steps"]
    threads = summary["threads"]
    parts.append(f"{summary['wall_time']:.1f} s ({threads} thread{'s' if threads > 1 else ''})")
    held_out = summary.get("held_out", VALIDATION)
    for key in ("val_accuracy", "val_loss", "val_perplexity"):
        value = final.get(key)
        if value is not None and value == value:  # (NaN: not measured for this task)
            parts.append(metric_text(key, value, held_out))
    if is_main_process():
        print(f"{recipe.name}: " + ", ".join(parts) + f"  -> {run_dir}")
    return 0
