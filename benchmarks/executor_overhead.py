"""What Ray adds to each run of a comparison, against a local one, on runs of one step.

A comparison of N one-step runs (the digits MLP) runs three ways: in this process
(``--jobs 1``), in forked processes (``--jobs 2``), and as Ray tasks on a one-CPU local
cluster (so its tasks also run one at a time); once the cluster is up and its worker has
imported torch, the difference per run is Ray's cost (a task's scheduling, its progress actor
and the result's trip back). The cluster's start and first task are reported apart: a
comparison pays them once. Rounds alternate the three; the median is reported. Run:
    python benchmarks/executor_overhead.py [--runs 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

from nnopt.experiments.api import compare

RECIPE = {
    "name": "one-step",
    "data": {"name": "digits"},
    "model": {"kind": "mlp", "hidden": [8]},
    "optimizer": {"name": "sgd", "lr": 0.1},
    "train": {"steps": 1, "batch_size": 32, "eval_every": 1},
}


def seconds(out: Path, runs: int, **options: object) -> float:
    start = time.perf_counter()
    compare(RECIPE, seeds=runs, out=out, report=False, **options)  # type: ignore[arg-type]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING)  # fmt: skip
    started = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        first = seconds(Path(tmp, "warm-up"), 1, executor="ray")  # the worker imports torch
        times: dict[str, list[float]] = {"jobs 1": [], "jobs 2": [], "ray": []}
        for r in range(args.rounds):
            times["jobs 1"].append(seconds(Path(tmp, f"local-{r}"), args.runs))
            times["jobs 2"].append(seconds(Path(tmp, f"fork-{r}"), args.runs, jobs=2))
            times["ray"].append(seconds(Path(tmp, f"ray-{r}"), args.runs, executor="ray"))
    ray.shutdown()
    print(f"Ray local cluster start: {started:.1f} s; its first task (worker start): {first:.1f} s")
    median = {name: statistics.median(t) for name, t in times.items()}
    for name, t in median.items():
        each = t / args.runs * 1e3
        print(f"{name:>7}: {t:.2f} s for {args.runs} one-step runs, {each:.0f} ms a run")
    extra = (median["ray"] - median["jobs 1"]) / args.runs
    print(f"Ray adds {extra * 1e3:.0f} ms a run against --jobs 1 (median of {args.rounds} rounds)")


if __name__ == "__main__":
    main()
