"""Paired differences between two variants over the same seeds, with a bootstrap interval.

The same evaluation seed gives both variants the same data split, data order and initial
weights, so the per-seed difference removes that shared noise: a paired comparison needs far
fewer seeds than comparing two medians. The interval is the percentile bootstrap of the mean
difference (Efron & Tibshirani 1993, ch. 13); "A beats B" is said only when it excludes 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

RESAMPLES = 10_000
LEVEL = 0.95
BOOTSTRAP_SEED = 0  # fixed: the same runs always give the same interval


@dataclass(frozen=True)
class Paired:
    """The mean of ``a - b`` over the seeds both finished, and its bootstrap interval."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def real(self) -> bool:
        """Whether the interval excludes 0: only then is one variant said to beat the other."""
        return self.n > 1 and (self.low > 0 or self.high < 0)


def bootstrap_interval(
    diffs: list[float], resamples: int = RESAMPLES, level: float = LEVEL, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean of ``diffs`` (resampled with
    replacement, ``resamples`` times)."""
    values = np.asarray(diffs, dtype=float)
    if values.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def paired(a: dict[int, float], b: dict[int, float]) -> Paired:
    """``a - b`` over the seeds (keys) where both have a number (diverged runs have none)."""
    seeds = sorted(k for k in a.keys() & b.keys() if not (math.isnan(a[k]) or math.isnan(b[k])))
    diffs = [a[k] - b[k] for k in seeds]
    if not diffs:
        return Paired(math.nan, math.nan, math.nan, 0)
    low, high = bootstrap_interval(diffs)
    return Paired(float(np.mean(diffs)), low, high, len(diffs))
