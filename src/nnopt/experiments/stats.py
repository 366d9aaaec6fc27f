"""Summary statistics of a comparison: per variant, over seeds, diverged runs apart."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from nnopt.names import VALIDATION, metric_label


@dataclass
class RunRecord:
    """One finished (or diverged) run of a comparison."""

    variant: str
    seed: int
    summary: dict[str, Any]
    history: list[dict[str, Any]]
    run_dir: str = ""

    @property
    def diverged(self) -> bool:
        return self.summary.get("status") == "diverged"


@dataclass
class Spread:
    """Median, min, max, mean and standard deviation of a list of numbers."""

    median: float
    low: float
    high: float
    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Spread | None:
        values = [v for v in values if v is not None and not math.isnan(v)]
        if not values:
            return None
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return cls(
            median=statistics.median(values),
            low=min(values),
            high=max(values),
            mean=statistics.fmean(values),
            std=std,
            n=len(values),
        )


@dataclass
class VariantStats:
    """What the comparison table shows for one variant."""

    variant: str
    metric: str
    runs: int
    diverged: int
    final: Spread | None
    best: Spread | None
    train_loss: Spread | None
    wall_time: Spread | None
    steps_to_target: Spread | None = None
    time_to_target: Spread | None = None
    reached_target: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    held_out: str = VALIDATION  # the split val_* metrics are measured on (nnopt.names)

    @property
    def label(self) -> str:
        return metric_label(self.metric, self.held_out)


def held_out_of(records: list[RunRecord]) -> str:
    """What the runs' held-out split is: "test", "validation" (or "held-out" when mixed)."""
    kinds = {r.summary.get("held_out", VALIDATION) for r in records}
    return kinds.pop() if len(kinds) == 1 else "held-out"


def reaches(value: float, target: float, metric: str) -> bool:
    """Accuracy reaches a target from below, a loss from above."""
    return value >= target if metric.endswith("accuracy") else value <= target


def first_reaching(history: list[dict], metric: str, target: float) -> dict | None:
    """The first evaluation row at which the metric reached the target, if any."""
    for row in history:
        value = row.get(metric)
        if value is not None and not math.isnan(value) and reaches(value, target, metric):
            return row
    return None


def variant_stats(
    variant: str, records: list[RunRecord], metric: str, target: float | None = None
) -> VariantStats:
    """Statistics over the seeds of one variant; diverged runs are counted, not averaged."""
    ok = [r for r in records if not r.diverged]
    pick = max if metric.endswith("accuracy") else min

    def best_of(history: list[dict]) -> float:
        values = [row[metric] for row in history if not math.isnan(row.get(metric, math.nan))]
        return pick(values) if values else math.nan

    stats = VariantStats(
        variant=variant,
        metric=metric,
        runs=len(records),
        diverged=len(records) - len(ok),
        final=Spread.of([r.history[-1][metric] if r.history else math.nan for r in ok]),
        best=Spread.of([best_of(r.history) for r in ok]),
        train_loss=Spread.of([r.history[-1]["train_loss"] if r.history else math.nan for r in ok]),
        wall_time=Spread.of([r.summary.get("wall_time", math.nan) for r in ok]),
        held_out=held_out_of(records),
    )
    if target is not None:
        hits = [first_reaching(r.history, metric, target) for r in ok]
        hits = [h for h in hits if h is not None]
        stats.reached_target = len(hits)
        stats.steps_to_target = Spread.of([h["step"] for h in hits])
        stats.time_to_target = Spread.of([h["time"] for h in hits])
    return stats


def spread_dict(spread: Spread | None) -> dict[str, float] | None:
    return None if spread is None else dict(spread.__dict__)


def stats_dict(stats: VariantStats) -> dict[str, Any]:
    """Plain-JSON form of a variant's statistics."""
    out: dict[str, Any] = {
        "variant": stats.variant,
        "metric": stats.metric,
        "held_out": stats.held_out,
        "runs": stats.runs,
        "diverged": stats.diverged,
        "reached_target": stats.reached_target,
    }
    for name in ("final", "best", "train_loss", "wall_time", "steps_to_target", "time_to_target"):
        out[name] = spread_dict(getattr(stats, name))
    return out
