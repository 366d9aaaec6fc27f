"""Time to a target, scored as AlgoPerf scores it (Dahl et al. 2023, "Benchmarking Neural
Network Training Algorithms"; its ``scoring/performance_profile.py``).

On each workload, a variant's time to the target over the best variant's: its ratio. A variant
that never reaches the target, or takes more than ``MAX_RATIO`` times the best, gets an
infinite ratio (a failure). The performance profile of a variant is the fraction of workloads
whose ratio is at most tau, for tau from 1 to ``MAX_RATIO``; its score is the area under that
curve divided by ``MAX_RATIO - 1``, so 1 means best on every workload and 0 means failed on all.
"""

from __future__ import annotations

import math

import numpy as np

MAX_RATIO = 4.0


def ratios(times: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """``times[workload][variant]`` (inf or nan: not reached) -> the same table of ratios to
    each workload's best, inf past ``MAX_RATIO``."""
    out: dict[str, dict[str, float]] = {}
    for workload, row in times.items():
        finite = [t for t in row.values() if math.isfinite(t)]
        best = min(finite) if finite else math.inf
        out[workload] = {}
        for variant, t in row.items():
            r = t / best if math.isfinite(t) and math.isfinite(best) and best > 0 else math.inf
            if math.isfinite(t) and best == 0:
                r = 1.0 if t == 0 else math.inf
            out[workload][variant] = r if r <= MAX_RATIO else math.inf
    return out


def profile(table: dict[str, dict[str, float]], variant: str, taus: np.ndarray) -> np.ndarray:
    """The fraction of workloads on which ``variant``'s ratio is <= each tau."""
    values = np.array([row.get(variant, math.inf) for row in table.values()], dtype=float)
    return (values[None, :] <= taus[:, None]).mean(axis=1)


def score(table: dict[str, dict[str, float]], variant: str) -> float:
    """The normalized area under the profile, exactly: the profile is a step function, so the
    area is the mean over workloads of (MAX_RATIO - ratio), zero for a failure."""
    values = [row.get(variant, math.inf) for row in table.values()]
    if not values:
        return math.nan
    area = [MAX_RATIO - max(r, 1.0) if math.isfinite(r) else 0.0 for r in values]
    return float(np.mean(area)) / (MAX_RATIO - 1.0)


def median_time(times: list[float]) -> float:
    """A variant's time on a workload: the median over its runs, a failed run counting as
    infinite (so more than half failed gives infinity)."""
    if not times:
        return math.inf
    ordered = sorted(t if math.isfinite(t) else math.inf for t in times)
    n = len(ordered)
    middle = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    return float(middle)
