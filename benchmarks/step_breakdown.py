"""Where an nnopt step's time goes on many small tensors: checks, kernel, the rest.

    python benchmarks/step_breakdown.py [--count 2000] [--size 1000] [--steps 51]

Wraps the methods that make up ``Optimizer.step`` with timers and prints, per optimizer, the
median step time and the mean time spent in each method. The two checks (``is_intact``: has
any ``p.data`` moved out of the flat buffer? ``prepare``: is every ``.grad`` still the buffer's
view?) cost Python time per parameter tensor; ``_step_bucket`` is the whole update of the
buffer (``prepare`` included).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from nnopt.bench.step import DEFAULT, attached_params, draw
from nnopt.optim import dispatch, flat, table

TIMED = [
    (flat.FlatBucket, "is_intact"),
    (flat.FlatBucket, "prepare"),
    (dispatch, "_step_bucket"),
]

# The benchmark's optimizers, from the one table, in nnopt's flat layout.
OPTIMIZERS: dict[str, Callable[[list[torch.Tensor]], torch.optim.Optimizer]] = {
    row.name: (lambda ps, row=row: row.build(ps, 1e-3, flat=True))
    for row in map(table.row, DEFAULT)
}


def instrument(spent: dict[str, float]) -> None:
    """Replace each timed method by a wrapper that adds its wall time to ``spent``."""
    for owner, name in TIMED:
        method = getattr(owner, name)

        def timed(*args, _method=method, _name=name, **kwargs):
            start = time.perf_counter()
            try:
                return _method(*args, **kwargs)
            finally:
                spent[_name] = spent.get(_name, 0.0) + time.perf_counter() - start

        setattr(owner, name, timed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=51)
    args = parser.parse_args()
    spent: dict[str, float] = {}
    instrument(spent)
    values, grads = draw(args.count, args.size)
    print(f"{args.count} tensors x {args.size}, ms per step (median step, mean per method)")
    print(f"{'optimizer':10s} {'step':>7s} " + " ".join(f"{n:>10s}" for _, n in TIMED))
    for name, make in OPTIMIZERS.items():
        opt = make(attached_params(values, grads))
        for _ in range(3):
            opt.step()
        spent.clear()
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            opt.step()
            times.append(time.perf_counter() - start)
        parts = " ".join(f"{spent.get(n, 0.0) / args.steps * 1e3:10.2f}" for _, n in TIMED)
        print(f"{name:10s} {statistics.median(times) * 1e3:7.2f} {parts}")


if __name__ == "__main__":
    main()
