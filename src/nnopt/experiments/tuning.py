"""``nnopt compare --tune``: every variant tuned with the same budget, then tested apart.

The protocol (DeepOBS, Schneider et al. 2019; AlgoPerf, Dahl et al. 2023): each variant gets
the same ``budget`` trials, the same points of one declared space (``space.py``), each trained
on the tuning seed and scored on a validation split carved from the training data
(``data.holdout = "validation"``, whatever the recipe says), so the test split is never read.
The best trial's point is then run on ``seeds`` evaluation seeds, none of them the tuning seed,
and reported on the recipe's held-out split (the test split where the data ships one), beside
the recipe's own point on the same seeds (the "defaults" column, as Schmidt et al. 2021 report).

Every trial is a run directory like any other, so an interrupted tuning resumes without
rerunning finished trials; ``tuning.json`` holds the space and budget it was started with, and a
rerun with another space or budget is refused in one line naming what changed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nnopt import atomic
from nnopt.errors import UsageError
from nnopt.experiments import space as spaces
from nnopt.experiments.compare import check_same_recipe, run_plan, safe_name
from nnopt.experiments.executors import Executor
from nnopt.experiments.jobs import Event, Passed
from nnopt.experiments.stats import RunRecord
from nnopt.recipe import Recipe

PLAN = "tuning.json"  # the space and budget a tuning directory was started with
EVAL_OFFSET = 1  # evaluation seeds: recipe.seed + 1 ... + K; the tuning seed is recipe.seed

Point = dict[str, int | float | str]


@dataclass
class Trial:
    """One point of one variant, trained on the tuning seed and scored on validation."""

    index: int
    point: Point
    record: RunRecord

    @property
    def score(self) -> float:
        """The final validation metric; NaN when the run diverged."""
        if self.record.diverged or not self.record.history:
            return math.nan
        metric = self.record.summary.get("metric", "val_accuracy")
        return float(self.record.history[-1].get(metric, math.nan))


@dataclass
class VariantTuning:
    """A variant's trials, its chosen trial (None when all diverged) and its evaluation."""

    variant: str
    space: list[spaces.Dimension]
    trials: list[Trial]
    chosen: int | None
    tuned: list[RunRecord]  # the chosen point on the evaluation seeds
    defaults: list[RunRecord]  # the recipe's own point on the same seeds

    @property
    def point(self) -> Point | None:
        return None if self.chosen is None else self.trials[self.chosen].point


def choose(trials: list[Trial], metric: str) -> int | None:
    """The index of the best trial on validation (the first of equals); None if all diverged."""
    scored = [(t.score, t.index) for t in trials if not math.isnan(t.score)]
    if not scored:
        return None
    sign = 1.0 if metric.endswith("accuracy") else -1.0
    return max(scored, key=lambda s: (sign * s[0], -s[1]))[1]


def without_tune(recipe: Recipe) -> Recipe:
    """The recipe a run gets: its [tune] table is the comparison's business, not the run's."""
    raw = recipe.model_dump(exclude_unset=True)
    raw.pop("tune", None)
    return Recipe.from_dict(raw)


def trial_recipe(recipe: Recipe, point: Point) -> Recipe:
    """A trial: the point, the tuning seed, and validation carved from the training data."""
    base = without_tune(recipe)
    return base.with_overrides([*spaces.overrides(base, point), "data.holdout=validation"])


def eval_seeds(recipe: Recipe, seeds: int) -> list[int]:
    return [recipe.seed + EVAL_OFFSET + i for i in range(seeds)]


def plan_text(space: list[spaces.Dimension], budget: int, own: dict[str, list[str]]) -> str:
    declared = [d.spec for d in space]
    return json.dumps({"tune": declared, "budget": budget, "narrowed": own}, indent=1)


def check_resume(out: Path, text: str) -> None:
    """A directory started with another space or budget is refused, naming what changed."""
    saved = out / PLAN
    if not saved.is_file():
        return
    was, now = json.loads(saved.read_text()), json.loads(text)
    for key, flag in (("budget", "--budget"), ("tune", "--tune"), ("narrowed", "[tune]")):
        if was.get(key) != now.get(key):
            before, after = (_shown(v) for v in (was.get(key), now.get(key)))
            raise UsageError(
                f"{flag} changed since the tuning in {out} started (was {before}, now "
                f"{after}): use another --out, or the same {flag}"
            )


def _shown(value: object) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return value if isinstance(value, str) else json.dumps(value)


def prepare(
    variants: dict[str, Recipe], specs: list[str], budget: int
) -> tuple[dict[str, list[spaces.Dimension]], str]:
    """Each variant's (narrowed, checked) space and the plan text; every bad input is one
    line naming its flag, before anything runs."""
    if budget < 1:
        raise UsageError(f"--budget must be >= 1, got {budget}")
    declared = spaces.parse_space(specs)
    if not declared:
        raise UsageError("--tune needs at least one KEY=RANGE, e.g. optimizer.lr=log:1e-4:1")
    own: dict[str, list[spaces.Dimension]] = {}
    for label, recipe in variants.items():
        own[label] = spaces.narrowed(declared, recipe, label)
        spaces.check(own[label], without_tune(recipe), label)
    narrowed = {label: [d.spec for d in dims if d not in declared] for label, dims in own.items()}
    return own, plan_text(declared, budget, {k: v for k, v in narrowed.items() if v})


def run_tuning(
    variants: dict[str, Recipe],
    own: dict[str, list[spaces.Dimension]],
    budget: int,
    seeds: int,
    out: Path,
    *,
    jobs: int = 1,
    on_event: Callable[[Event], None] | None = None,
    passed: Passed | None = None,
    defaults: bool = True,
    executor: Executor | None = None,
) -> list[VariantTuning]:
    """Tune every variant (the same unit points, each in its own ranges), then run each
    chosen point (and with ``defaults``, each recipe's own point) on the evaluation seeds."""
    if seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {seeds}")
    dims = len(next(iter(own.values())))
    unit = spaces.unit_points(dims, budget)
    trial_plan: list[tuple[str, Recipe, Path]] = []
    points: dict[str, list[Point]] = {}
    for label, recipe in variants.items():
        points[label] = [{d.key: d.value(float(u)) for d, u in zip(own[label], row, strict=True)}
                         for row in unit]  # fmt: skip
        for i, point in enumerate(points[label]):
            where = out / "tuning" / safe_name(label) / f"trial-{i + 1:02d}"
            trial_plan.append((f"{label} trial {i + 1}", trial_recipe(recipe, point), where))
    for _, recipe, where in trial_plan:
        check_same_recipe(recipe, where, out)
    records = run_plan(trial_plan, jobs=jobs, on_event=on_event, passed=passed, executor=executor)
    results: list[VariantTuning] = []
    for n, label in enumerate(variants):
        mine = records[n * budget : (n + 1) * budget]
        trials = [Trial(i, p, r) for i, (p, r) in enumerate(zip(points[label], mine, strict=True))]
        metric = mine[0].summary.get("metric", "val_accuracy")
        results.append(VariantTuning(label, own[label], trials, choose(trials, metric), [], []))
    evaluate(variants, results, seeds, out, jobs=jobs, on_event=on_event, passed=passed,
             defaults=defaults, executor=executor)  # fmt: skip
    return results


def evaluate(
    variants: dict[str, Recipe],
    results: list[VariantTuning],
    seeds: int,
    out: Path,
    *,
    jobs: int,
    on_event: Callable[[Event], None] | None,
    passed: Passed | None,
    defaults: bool = True,
    executor: Executor | None = None,
) -> None:
    """The chosen points (and the recipes' own) on the evaluation seeds, in one batch of jobs."""
    plan: list[tuple[str, Recipe, Path]] = []
    slots: list[tuple[VariantTuning, str]] = []
    for result in results:
        base = without_tune(variants[result.variant])
        kinds = [("defaults", base)] if defaults else []
        if result.point is not None:
            kinds.insert(0, ("tuned", base.with_overrides(spaces.overrides(base, result.point))))
        for kind, recipe in kinds:
            for seed in eval_seeds(base, seeds):
                seeded = recipe.with_overrides([f"seed={seed}"])
                where = out / kind / safe_name(result.variant) / f"seed-{seed}"
                check_same_recipe(seeded, where, out)
                plan.append((f"{result.variant} {kind}", seeded, where))
                slots.append((result, kind))
    records = run_plan(plan, jobs=jobs, on_event=on_event, passed=passed, executor=executor)
    for (result, kind), record in zip(slots, records, strict=True):
        record.variant = result.variant
        (result.tuned if kind == "tuned" else result.defaults).append(record)


def write_plan(out: Path, text: str) -> None:
    atomic.write_text(out / PLAN, text)
