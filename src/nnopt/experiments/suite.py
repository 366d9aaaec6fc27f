"""``nnopt bench-suite``: every optimizer of the table, tuned with the same budget on each
workload, timed to each workload's fixed validation target and scored as AlgoPerf scores
(``profile.py``): one performance profile over all workloads, and its normalized area.

The workloads are recipes in ``workloads/`` (and any the user adds); ``workloads/suite.toml``
holds their ``--quick`` length and their targets, set once by ``--set-targets`` from the seed's
optimizers with the full budget. Every run holds its validation split out of the training data
(``data.holdout = "validation"``): the suite never reads a test split.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nnopt import atomic
from nnopt.errors import UsageError
from nnopt.experiments import profile, tuning
from nnopt.experiments.executors import Executor
from nnopt.experiments.jobs import Event
from nnopt.experiments.stats import RunRecord
from nnopt.experiments.tune_summary import TunedRow, summarize
from nnopt.optim import table
from nnopt.recipe import Recipe

WORKLOADS = Path(__file__).parent / "workloads"
SUITE = WORKLOADS / "suite.toml"
# The reference that sets the targets: the seed's optimizers (the others are what is judged).
SEED_OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")


@dataclass(frozen=True)
class Settings:
    """One size of the suite: ``--quick`` or the full one."""

    name: str  # "quick" or "full": which targets apply
    space: tuple[str, ...]
    budget: int
    seeds: int


FULL = Settings("full", ("optimizer.lr=log:1e-4:1",), budget=8, seeds=3)
QUICK = Settings("quick", ("optimizer.lr=log:1e-3:1",), budget=4, seeds=1)


@dataclass
class Workload:
    name: str
    recipe: Recipe
    target: float | None


@dataclass
class SuiteResult:
    settings: Settings
    workloads: list[Workload]
    rows: dict[str, list[TunedRow]]  # workload -> a row per optimizer
    metrics: dict[str, str]
    ratios: dict[str, dict[str, float]]  # workload -> optimizer -> time ratio to the best
    scores: dict[str, float] = field(default_factory=dict)
    records: dict[str, dict[str, list[RunRecord]]] = field(default_factory=dict)  # evaluation
    skipped: dict[str, dict[str, str]] = field(default_factory=dict)  # workload -> name -> why


def load_workloads(settings: Settings, added: list[str]) -> list[Workload]:
    """The built-in workloads (at the settings' length and target) and the user's, given as
    ``RECIPE`` or ``RECIPE=TARGET`` (without a target it is tabulated, not profiled)."""
    suite = tomllib.loads(SUITE.read_text())
    targets = suite.get("targets", {}).get(settings.name, {})
    out = []
    for name, spec in suite["workloads"].items():
        recipe = Recipe.load(WORKLOADS / f"{name}.toml")
        if settings.name == "quick":
            steps = int(spec["quick_steps"])
            every = max(1, steps // 10)
            recipe = recipe.with_overrides([f"train.steps={steps}", f"train.eval_every={every}"])
        out.append(Workload(name, recipe, targets.get(name)))
    for text in added:
        path, _, target = text.partition("=")
        recipe = Recipe.load(path)
        try:
            value = float(target) if target else None
        except ValueError:
            raise UsageError(f"--add {text}: the target {target!r} is not a number") from None
        if any(w.name == recipe.name for w in out):
            raise UsageError(f"--add {text}: a workload is already called {recipe.name!r}")
        out.append(Workload(recipe.name, recipe.with_overrides(["data.holdout=validation"]), value))
    return out


def variants_of(workload: Workload, optimizers: list[str]) -> dict[str, Recipe]:
    """The workload once per optimizer: only the name changes (each then tunes its lr)."""
    made = {}
    for name in optimizers:
        raw = workload.recipe.model_dump(exclude_unset=True)
        raw["optimizer"] = {"name": name, "lr": workload.recipe.optimizer.lr}
        made[name] = Recipe.from_dict(raw)
    return made


def usable(workload: Workload, variants: dict[str, Recipe]) -> dict[str, str]:
    """The optimizers that cannot train this workload's model, and why (torch's Muon takes
    2-D parameters only): asked of the optimizer on the built model, before any run. They
    are left out of the workload (a failure in its profile), not a crash of the suite."""
    from nnopt.training.build import build_optimizer, build_run

    model = build_run(workload.recipe).model
    refused = {}
    for name, recipe in variants.items():
        try:
            build_optimizer(recipe, model, 10)
        except ValueError as exc:
            refused[name] = str(exc).split(" (")[0]
    return refused


def check_optimizers(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in table.NAMES]
    if unknown:
        raise UsageError(
            f"--optimizers: unknown {', '.join(unknown)}; choose from {', '.join(table.NAMES)}"
        )
    return names or list(table.NAMES)


def run_suite(
    settings: Settings,
    workloads: list[Workload],
    optimizers: list[str],
    out: Path,
    *,
    jobs: int = 1,
    on_event: Callable[[Event], None] | None = None,
    executor: Executor | None = None,
) -> SuiteResult:
    """Tune and evaluate every optimizer on every workload; the profile over the workloads.
    ``executor``: where the runs execute (None: local processes)."""
    rows: dict[str, list[TunedRow]] = {}
    metrics: dict[str, str] = {}
    times: dict[str, dict[str, float]] = {}
    records: dict[str, dict[str, list[RunRecord]]] = {}
    skipped: dict[str, dict[str, str]] = {}
    for workload in workloads:
        variants = variants_of(workload, optimizers)
        skipped[workload.name] = usable(workload, variants)
        variants = {k: v for k, v in variants.items() if k not in skipped[workload.name]}
        own, text = tuning.prepare(variants, list(settings.space), settings.budget)
        where = out / workload.name
        tuning.check_resume(where, text)
        tuning.write_plan(where, text)
        results = tuning.run_tuning(variants, own, settings.budget, settings.seeds, where,
                                    jobs=jobs, on_event=on_event, defaults=False,
                                    executor=executor)  # fmt: skip
        metric = results[0].trials[0].record.summary.get("metric", "val_accuracy")
        found, _, _ = summarize(results, metric, workload.target)
        rows[workload.name], metrics[workload.name] = found, metric
        records[workload.name] = {r.variant: r.tuned for r in results}
        if workload.target is not None:
            times[workload.name] = {row.variant: row.time_to_target for row in found}
            times[workload.name] |= {name: math.inf for name in skipped[workload.name]}
    ratios = profile.ratios(times)
    scores = {name: profile.score(ratios, name) for name in optimizers} if ratios else {}
    return SuiteResult(settings, workloads, rows, metrics, ratios, scores, records, skipped)


def targets_from(result: SuiteResult) -> dict[str, float]:
    """AlgoPerf's rule on a run of the reference optimizers: per workload, the best one (best
    median final metric) and the worst, over its evaluation runs, of the best value each
    reached, so every one of its runs reaches the target."""
    targets = {}
    for workload in result.workloads:
        metric = result.metrics[workload.name]
        higher = metric.endswith("accuracy")
        rows = [r for r in result.rows[workload.name] if r.tuned is not None]
        if not rows:
            continue
        best = max(rows, key=lambda r: r.tuned.median * (1 if higher else -1))  # type: ignore[union-attr]
        runs = result.records[workload.name][best.variant]
        reached = [
            (max if higher else min)(v for row in run.history if not math.isnan(v := row[metric]))
            for run in runs
            if not run.diverged and run.history
        ]
        if reached:
            targets[workload.name] = min(reached) if higher else max(reached)
    return targets


def write_targets(settings: Settings, targets: dict[str, float]) -> None:
    """Store the targets in ``suite.toml`` (the one place they live), other lines kept."""
    lines = SUITE.read_text().splitlines()
    header = f"[targets.{settings.name}]"
    start = lines.index(header)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    kept = [line for line in lines[start + 1 : end] if line.split("=")[0].strip() not in targets]
    body = [line for line in kept if line.strip()] + [
        f"{name} = {value!r}"
        for name, value in targets.items()  # exact: a rounded target
        # could sit just past the value its reference reached
    ]
    atomic.write_text(
        SUITE, "\n".join([*lines[:start], header, *body, "", *lines[end:]]).rstrip() + "\n"
    )
