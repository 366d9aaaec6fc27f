"""The paired bootstrap interval and AlgoPerf's performance profile against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnopt.experiments import profile
from nnopt.experiments import space as spaces
from nnopt.experiments.paired import bootstrap_interval, paired


def test_bootstrap_interval_of_two_seeds_is_their_range():
    # Resampling [0, 1]: means 0, 0.5, 1 with chances 1/4, 1/2, 1/4, so the 2.5% and 97.5%
    # quantiles of the resampled means are 0 and 1.
    assert bootstrap_interval([0.0, 1.0]) == (0.0, 1.0)


def test_bootstrap_interval_of_three_seeds_by_hand():
    # [0, 0, 3]: the mean of a resample is k, k ~ Binomial(3, 1/3): P(k=0) = 8/27 > 2.5%, so
    # the low end is 0; P(k <= 2) = 26/27 < 97.5%, so the high end is 3.
    assert bootstrap_interval([0.0, 0.0, 3.0]) == (0.0, 3.0)
    assert bootstrap_interval([0.2, 0.2, 0.2]) == pytest.approx((0.2, 0.2))


def test_paired_pairs_by_seed_and_says_beats_only_when_the_interval_excludes_zero():
    a = {1: 0.90, 2: 0.92, 3: 0.91, 4: math.nan}
    b = {1: 0.88, 2: 0.90, 3: 0.89, 4: 0.5}  # seed 4 diverged in a: left out of the pairs
    found = paired(a, b)
    assert found.n == 3 and found.mean == pytest.approx(0.02)
    assert (found.low, found.high) == pytest.approx((0.02, 0.02)) and found.real
    mixed = paired({1: 1.0, 2: -1.0}, {1: 0.0, 2: 0.0})
    assert (mixed.low, mixed.high) == (-1.0, 1.0) and not mixed.real


def test_performance_profile_and_score_by_hand():
    times = {  # seconds to target; inf: never reached
        "w1": {"a": 10.0, "b": 20.0, "c": 50.0},
        "w2": {"a": 30.0, "b": 15.0, "c": math.inf},
        "w3": {"a": 8.0, "b": 8.0, "c": 16.0},
    }
    table = profile.ratios(times)
    # ratios to each workload's best; c's 5x on w1 is past 4x: a failure
    assert table == {
        "w1": {"a": 1.0, "b": 2.0, "c": math.inf},
        "w2": {"a": 2.0, "b": 1.0, "c": math.inf},
        "w3": {"a": 1.0, "b": 1.0, "c": 2.0},
    }
    taus = np.array([1.0, 1.5, 2.0, 4.0])
    assert profile.profile(table, "a", taus).tolist() == pytest.approx([2 / 3, 2 / 3, 1, 1])
    assert profile.profile(table, "c", taus).tolist() == pytest.approx([0, 0, 1 / 3, 1 / 3])
    # area under the step profile over [1, 4], over 3: a: ((4-1) + (4-2) + (4-1)) / 3 / 3
    assert profile.score(table, "a") == pytest.approx(8 / 9)
    assert profile.score(table, "b") == pytest.approx(8 / 9)
    assert profile.score(table, "c") == pytest.approx((4 - 2) / 3 / 3)
    # the same area by numerical integration of the profile
    fine = np.linspace(1, 4, 300_001)
    assert np.trapezoid(profile.profile(table, "c", fine), fine) / 3 == pytest.approx(
        2 / 9, abs=1e-4
    )


def test_median_time_counts_a_failed_run_as_infinite():
    assert profile.median_time([3.0, math.inf, 1.0]) == 3.0
    assert profile.median_time([3.0, math.inf, math.inf]) == math.inf
    assert profile.median_time([1.0, 3.0]) == 2.0


def test_a_chosen_point_at_the_end_of_its_range_is_named():
    space = [spaces.parse_dimension("optimizer.lr=log:1e-4:1"),
             spaces.parse_dimension("optimizer.betas[1]=0.9,0.99")]  # fmt: skip
    assert spaces.on_edge(space, {"optimizer.lr": 1.0, "optimizer.betas[1]": 0.99}) == [
        "optimizer.lr=1"
    ]
    assert spaces.on_edge(space, {"optimizer.lr": 1e-2, "optimizer.betas[1]": 0.9}) == []
