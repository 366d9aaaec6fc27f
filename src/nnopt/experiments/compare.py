"""Compare recipes over several seeds: run every (variant, seed), then tabulate and plot.

Differences between variants come from the optimization alone: a seed fixes the data split,
the data order and the initial weights, whatever the optimizer. A comparison interrupted
halfway resumes: finished runs are read back, unfinished ones continue from their checkpoint.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nnopt import atomic
from nnopt.errors import UsageError, UserError
from nnopt.experiments.executors import Executor, run_jobs
from nnopt.experiments.jobs import DONE, Event, Job, Passed
from nnopt.experiments.stats import RunRecord, VariantStats, stats_dict, variant_stats
from nnopt.recipe import Recipe
from nnopt.training.checkpoint import recipe_changes
from nnopt.training.metrics import read_metrics

PLAN = "variants.json"  # the variants a comparison directory holds: what a rerun must match
CHANGES = "recipe_changes.txt"  # the full list behind a refusal too long for one line
LINE = 60  # differences longer than this in a refusal: the rest go to CHANGES
NAME = 60  # the longest default directory name made of recipe names


def expand_variants(recipes: list[Recipe], vary: list[str]) -> dict[str, Recipe]:
    """Each recipe times the cartesian product of ``--vary key=v1,v2`` options, by label."""
    axes = []
    for spec in vary:
        key, sep, values = spec.partition("=")
        if not sep or not values:
            raise UsageError(f"--vary needs KEY=V1,V2,..., got {spec!r}")
        axes.append([f"{key.strip()}={v.strip()}" for v in values.split(",") if v.strip()])
    variants: dict[str, Recipe] = {}
    for recipe in recipes:
        for combo in itertools.product(*axes) if axes else [()]:
            label = ",".join(c.split("=", 1)[1] for c in combo)
            if len(recipes) > 1 or not label:
                label = f"{recipe.name}[{label}]" if label else recipe.name
            if label in variants:
                raise UsageError(
                    f"two variants are both called {label!r}: give recipes distinct names"
                )
            variants[label] = recipe.with_overrides(list(combo)) if combo else recipe
    return variants


def plan_text(variants: dict[str, Recipe], tuning: str = "") -> str:
    """What a comparison directory holds; a tuned one adds its space and budget."""
    plan: dict[str, Any] = {"variants": {k: r.to_toml() for k, r in variants.items()}}
    if tuning:
        plan["tuning"] = json.loads(tuning)
    return json.dumps(plan, indent=1)


def default_out(variants: dict[str, Recipe], tuning: str = "") -> Path:
    """runs/compare-NAME[+NAME...] (``outputs.named_output``'s rule): a directory holding
    this very comparison is picked up, any other one is left alone."""
    from nnopt.outputs import named_output

    names = list(dict.fromkeys(recipe.name for recipe in variants.values()))
    name = "+".join(names)
    if len(names) > 1 and len(name) > NAME:
        name = f"{names[0]}+{len(names) - 1}-more"
    text = plan_text(variants, tuning)

    def same(directory: Path) -> bool:
        plan = directory / PLAN
        return plan.is_file() and plan.read_text() == text

    return named_output(f"compare-{name}", same)


def check_target(target: float | None, recipe: Recipe, data: Any = None) -> None:
    """A target on the scale of the metric the runs follow: an accuracy is a fraction (95 is
    0.95), a loss is never negative, a perplexity never below 1. Known before any run starts
    (the data is read only when train.metric is "auto" and the task unknown)."""
    if target is None:
        return
    from nnopt.data import load
    from nnopt.training.build import followed_metric

    metric = recipe.train.metric
    if metric == "auto":
        task = (
            recipe.data.task
            if recipe.data.task != "auto"
            else load(recipe.data, recipe.seed, data).task
        )
        metric = followed_metric(recipe, task)
    if metric.endswith("accuracy") and not 0 <= target <= 1:
        guess = f": did you mean {target / 100:g}?" if 1 < target <= 100 else ""
        raise UsageError(f"target {target:g} is outside [0, 1], the range of {metric}{guess}")
    least = 1.0 if metric.endswith("perplexity") else 0.0
    if target < least:
        guess = f": did you mean {-target:g}?" if -target >= least else ""
        raise UsageError(f"target {target:g} is below {least:g}, the least {metric} can be{guess}")


def safe_name(variant: str) -> str:
    """A variant's label as a directory name."""
    return "".join(c if c.isalnum() or c in "-_.=," else "_" for c in variant)


def _run_dir(out: Path, variant: str, seed: int) -> Path:
    return out / "runs" / safe_name(variant) / f"seed-{seed}"


def check_same_recipe(recipe: Recipe, run_dir: Path, out: Path) -> None:
    """Picking up a run is only right if it is a run of this very recipe."""
    saved = run_dir / "recipe.toml"
    # The trainer's own rule (checkpoint.recipe_changes), checked here before any run starts.
    changes = recipe_changes(Recipe.load(saved), recipe) if saved.is_file() else []
    if not changes:
        return
    advice = "use another --out, or delete that directory to run it again"
    listed = "; ".join(changes)
    message = f"{run_dir} holds a run of a different recipe ({listed}): {advice}"
    if len(listed) > LINE:  # the whole list goes to a file; the line keeps what fits
        listing = out / CHANGES
        atomic.write_text(
            listing, f"{run_dir} holds a run of a different recipe; {advice}:\n"
            + "".join(f"  {c}\n" for c in changes),
        )  # fmt: skip
        fields = [c.partition(":")[0] for c in changes]
        shown = fields[0]
        for n, field in enumerate(fields[1:], 1):
            if len(shown + ", " + field) > LINE:
                shown += f" and {len(fields) - n} more"
                break
            shown += ", " + field
        message = (
            f"{run_dir} holds another recipe's run: {len(fields)} fields differ ({shown}; "
            f"all in {listing}): use another --out"
        )
    raise UserError(message)


def read_record(variant: str, seed: int, run_dir: Path) -> RunRecord | None:
    """A finished (or diverged) run read back from its directory; None if it has not ended."""
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        return None
    summary = json.loads(summary_path.read_text())
    if summary.get("status") not in DONE:
        return None
    metrics = run_dir / "metrics.csv"
    history = read_metrics(metrics) if metrics.is_file() else []
    return RunRecord(variant, seed, summary, history, str(run_dir))


def _plan(variants: dict[str, Recipe], seeds: int, out: Path) -> list[tuple[str, Recipe, Path]]:
    """(variant, seeded recipe, run directory) of every run, each checked against what its
    directory already holds."""
    plan = []
    for variant, recipe in variants.items():
        for i in range(seeds):
            seeded = recipe.with_overrides([f"seed={recipe.seed + i}"])
            plan.append((variant, seeded, _run_dir(out, variant, seeded.seed)))
    for _, recipe, run_dir in plan:
        check_same_recipe(recipe, run_dir, out)
    return plan


def finished_runs(variants: dict[str, Recipe], seeds: int, out: Path) -> int:
    """How many of the comparison's runs ``out`` already holds finished (read back, not run)."""
    if seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {seeds}")
    return sum(read_record(v, r.seed, d) is not None for v, r, d in _plan(variants, seeds, out))


def run_comparison(
    variants: dict[str, Recipe],
    seeds: int,
    out: Path,
    *,
    jobs: int = 1,
    on_event: Callable[[Event], None] | None = None,
    passed: Passed | None = None,
    executor: Executor | None = None,
) -> list[RunRecord]:
    """Run (or pick up) every (variant, seed) and return their records, in a stable order.

    ``on_event`` sees every job's progress, done and error events (``jobs.Event``);
    ``passed`` holds a model and data given from Python, used by every run; ``executor``
    says where the runs execute (``nnopt.experiments.executors``; None: local processes).
    """
    if seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {seeds}")
    plan = _plan(variants, seeds, out)
    return run_plan(plan, jobs=jobs, on_event=on_event, passed=passed, executor=executor)


def run_plan(
    plan: list[tuple[str, Recipe, Path]],
    *,
    jobs: int = 1,
    on_event: Callable[[Event], None] | None = None,
    passed: Passed | None = None,
    executor: Executor | None = None,
) -> list[RunRecord]:
    """Run (or pick up) every (label, recipe, run directory) of ``plan``; their records in
    the plan's order. What compare, tuning trials and evaluation runs share."""
    if jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {jobs}")
    todo = [
        Job(v, r.seed, r.to_toml(), str(d), passed)
        for v, r, d in plan
        if read_record(v, r.seed, d) is None
    ]
    if todo:
        # Parallel runs share the cores: one thread each avoids oversubscription.
        threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else 0
        run_jobs(todo, jobs, threads, on_event or (lambda event: None), executor)
    records = [read_record(v, r.seed, d) for v, r, d in plan]
    missing = [d for (_, _, d), rec in zip(plan, records, strict=True) if rec is None]
    if missing:
        raise RuntimeError(f"runs did not finish: {', '.join(str(m) for m in missing)}")
    return records  # type: ignore[return-value]


def summarize(
    records: list[RunRecord], target: float | None = None
) -> tuple[list[VariantStats], str]:
    """Per-variant statistics, on the metric the runs report (accuracy or loss)."""
    metric = records[0].summary.get("metric", "val_accuracy") if records else "val_accuracy"
    by_variant: dict[str, list[RunRecord]] = {}
    for record in records:
        by_variant.setdefault(record.variant, []).append(record)
    return [variant_stats(v, rs, metric, target) for v, rs in by_variant.items()], metric


def write_summaries(out: Path, records: list[RunRecord], stats: list[VariantStats]) -> dict:
    """summary.csv (one row per run) and summary.json (per run and per variant)."""
    columns = ["variant", "seed", "status", "steps", "wall_time", "final_val_loss",
               "final_val_accuracy", "final_train_loss", "best", "run_dir"]  # fmt: skip
    rows = []
    for r in records:
        final = r.summary.get("final") or {}
        best = r.summary.get("best") or {}
        rows.append({
            "variant": r.variant,
            "seed": r.seed,
            "status": r.summary.get("status"),
            "steps": r.summary.get("steps"),
            "wall_time": r.summary.get("wall_time"),
            "final_val_loss": final.get("val_loss"),
            "final_val_accuracy": final.get("val_accuracy"),
            "final_train_loss": final.get("train_loss"),
            "best": best.get(r.summary.get("metric", ""), None),
            "run_dir": r.run_dir,
        })  # fmt: skip
    csv_path = out / "summary.csv"
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(csv_path, buffer.getvalue())
    json_path = out / "summary.json"
    payload = {"runs": rows, "variants": [stats_dict(s) for s in stats]}
    atomic.write_text(json_path, json.dumps(payload, indent=2, default=str) + "\n")
    return {"summary.csv": csv_path, "summary.json": json_path}
