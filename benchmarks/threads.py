"""Training time with one CPU thread against several, side by side (what `train.threads` picks).

Each round trains the recipe once per thread count, in turn, so that both share the machine's
load; the median over rounds is reported, and the ratio. Run:
    python benchmarks/threads.py [--recipe examples/digits_mlp.toml] [--steps 75] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from nnopt.recipe import Recipe
from nnopt.training import Trainer
from nnopt.training.threads import usable_cores


def seconds(recipe: Recipe, threads: int) -> float:
    trainer = Trainer(recipe.with_overrides([f"train.threads={threads}"]))  # built untimed
    start = time.perf_counter()
    trainer.run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="examples/digits_mlp.toml")
    parser.add_argument("--steps", type=int, default=75)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=max(2, usable_cores()))
    args = parser.parse_args()
    recipe = Recipe.load(args.recipe).with_overrides(
        [f"train.steps={args.steps}", f"train.eval_every={args.steps}"]
    )
    seconds(recipe, 1)  # warm-up: data generation, kernel load, allocator
    counts = (1, args.threads)
    times: dict[int, list[float]] = {n: [] for n in counts}
    for _ in range(args.rounds):
        for n in counts:
            times[n].append(seconds(recipe, n))
    print(f"{args.recipe}, {args.steps} steps, torch {torch.__version__}, {usable_cores()} cores")
    for n in counts:
        values = times[n]
        print(f"  {n} thread(s): median {statistics.median(values):.3f} s  {values}")
    ratio = statistics.median(times[args.threads]) / statistics.median(times[1])
    print(f"  {args.threads} threads take {ratio:.2f}x the time of one")


if __name__ == "__main__":
    main()
