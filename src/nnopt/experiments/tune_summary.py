"""What a tuned comparison found, per variant: the numbers its table, report and JSON show.

Every number says its split: trials are scored on validation, the evaluation runs on the
recipe's held-out split (the test split where the data ships one, see ``nnopt.names``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from nnopt.experiments import profile
from nnopt.experiments.paired import Paired, paired
from nnopt.experiments.space import on_edge
from nnopt.experiments.stats import RunRecord, Spread, first_reaching, held_out_of
from nnopt.experiments.tuning import VariantTuning


@dataclass
class TunedRow:
    """One variant of a tuned comparison."""

    variant: str
    point: dict[str, int | float | str] | None
    trials: list[float]  # each trial's final validation metric (NaN: diverged)
    chosen: int | None
    tuned: Spread | None  # the chosen point over the evaluation seeds
    defaults: Spread | None  # the recipe's own point over the same seeds
    tuned_by_seed: dict[int, float]
    vs_best: Paired | None  # tuned minus the best variant's tuned, per seed (None: the best)
    trial_failures: int
    run_failures: int
    runs: int
    tuning_cost: float  # seconds of training over all trials
    time_to_target: float = math.nan  # median over the evaluation runs (inf: failed)
    steps_to_target: float = math.nan
    target_failures: int = 0  # not reached, or more than 4x the best variant's median time
    target_score: float = math.nan
    edges: list[str] = field(default_factory=list)  # chosen values at an end of their range
    extra: dict[str, Any] = field(default_factory=dict)


def final(record: RunRecord, metric: str) -> float:
    if record.diverged or not record.history:
        return math.nan
    return float(record.history[-1].get(metric, math.nan))


def summarize(
    results: list[VariantTuning], metric: str, target: float | None = None
) -> tuple[list[TunedRow], str | None, str]:
    """Rows, the best variant (best median tuned metric) and the evaluation's split."""
    rows = []
    for r in results:
        by_seed = {rec.seed: final(rec, metric) for rec in r.tuned}
        rows.append(TunedRow(
            variant=r.variant, point=r.point, trials=[t.score for t in r.trials],
            chosen=r.chosen, tuned=Spread.of(list(by_seed.values())),
            defaults=Spread.of([final(rec, metric) for rec in r.defaults]),
            tuned_by_seed=by_seed, vs_best=None,
            trial_failures=sum(t.record.diverged for t in r.trials),
            run_failures=sum(rec.diverged for rec in r.tuned), runs=len(r.tuned),
            tuning_cost=sum(float(t.record.summary.get("wall_time") or 0.0) for t in r.trials),
            edges=on_edge(r.space, r.point) if r.point is not None else [],
        ))  # fmt: skip
    ranked = [row for row in rows if row.tuned is not None]
    sign = 1.0 if metric.endswith("accuracy") else -1.0
    best = max(ranked, key=lambda row: sign * row.tuned.median).variant if ranked else None  # type: ignore[union-attr]
    if best is not None:
        reference = next(row for row in rows if row.variant == best)
        for row in rows:
            if row.variant != best:
                row.vs_best = paired(row.tuned_by_seed, reference.tuned_by_seed)
    if target is not None:
        _to_target(rows, results, metric, target)
    held = held_out_of([rec for r in results for rec in r.tuned] or
                       [rec for r in results for rec in r.defaults])  # fmt: skip
    return rows, best, held


def _to_target(
    rows: list[TunedRow], results: list[VariantTuning], metric: str, target: float
) -> None:
    """AlgoPerf's time to target on the evaluation runs (``profile``): a run is a failure
    when it never reaches the target or takes more than 4x the best variant's median."""
    times: dict[str, list[float]] = {}
    for row, r in zip(rows, results, strict=True):
        hits = [None if rec.diverged else first_reaching(rec.history, metric, target)
                for rec in r.tuned]  # fmt: skip
        times[row.variant] = [math.inf if h is None else float(h["time"]) for h in hits]
        steps = [math.inf if h is None else float(h["step"]) for h in hits]
        row.time_to_target = profile.median_time(times[row.variant])
        row.steps_to_target = profile.median_time(steps)
    finite = [row.time_to_target for row in rows if math.isfinite(row.time_to_target)]
    best = min(finite) if finite else math.inf
    table = profile.ratios({"this workload": {row.variant: row.time_to_target for row in rows}})
    for row in rows:
        row.target_failures = sum(
            not (math.isfinite(t) and t <= profile.MAX_RATIO * best) for t in times[row.variant]
        )
        row.target_score = profile.score(table, row.variant)
