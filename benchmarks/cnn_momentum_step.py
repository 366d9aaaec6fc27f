"""One SGD-momentum step on the MNIST-1D CNN's parameters: nnopt against torch.optim's fused
and foreach steps, side by side (the shape where per-step overhead, not memory, is the time).

    python benchmarks/cnn_momentum_step.py [--rounds 3000]

The model is the paper's CNN as nnopt builds it (``cnn1d``: 8 tensors, 5,210 parameters);
gradients are attached once, as after a backward, and only ``opt.step()`` is timed. Each round
times one step of every variant in rotating order (a burst of load on this shared machine lands
on all of them), one thread; the medians are printed with nnopt's ratio to torch's fused step.
"""

from __future__ import annotations

import argparse
import sys

import torch

import nnopt
from nnopt.bench.step import interleaved_medians
from nnopt.models import cnn1d


def _optimizer(kind: str, shapes: list[torch.Size]) -> torch.optim.Optimizer:
    gen = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen)
    if kind.startswith("nnopt"):
        return nnopt.SGD(params, lr=0.01, momentum=0.9, flat=kind.endswith("flat=True"))
    return torch.optim.SGD(params, lr=0.01, momentum=0.9, **{kind.split()[1]: True})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3000, help="timed rounds (default 3000)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = cnn1d(40, 10, 25, "relu", 0.0)
    shapes = [p.shape for p in model.parameters()]
    kinds = ["nnopt", "nnopt flat=True", "torch fused", "torch foreach"]
    opts = {kind: _optimizer(kind, shapes) for kind in kinds}
    for opt in opts.values():
        for _ in range(5):  # state allocated, kernels loaded
            opt.step()
    seconds = interleaved_medians({kind: opt.step for kind, opt in opts.items()}, args.rounds)
    median = {kind: value * 1e6 for kind, value in seconds.items()}
    numel = sum(p.numel() for p in model.parameters())
    print(f"MNIST-1D CNN: {len(shapes)} tensors, {numel} parameters; median step, us "
          f"({args.rounds} interleaved rounds, 1 thread)")  # fmt: skip
    print("| " + " | ".join(kinds) + " | nnopt / torch fused | nnopt flat / torch fused |")
    print("|" + "---|" * (len(kinds) + 2))
    fused = median["torch fused"]
    cells = " | ".join(f"{median[k]:.1f}" for k in kinds)
    print(f"| {cells} | {median['nnopt'] / fused:.2f} | {median['nnopt flat=True'] / fused:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
