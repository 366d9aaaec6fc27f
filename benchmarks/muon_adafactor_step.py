"""Muon and Adafactor steps: nnopt's against torch's, side by side in one run.

Neither has a native kernel (Muon's Newton-Schulz is matrix products, Adafactor's second
moment row and column reductions: torch's own kernels do the work), so the question is what
nnopt's dispatch costs on top of torch's loop. Rounds alternate the contenders, so a noisy
machine slows both alike; the table gives medians and the ratio nnopt / torch.

    .venv/bin/python benchmarks/muon_adafactor_step.py [--steps 20] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import nnopt

# The character LM's matrices and vectors (width 64, 2 blocks) and one larger hidden layer.
SHAPES = [(192, 64), (64, 64), (256, 64), (64, 256)] * 2 + [(1024, 1024)] + [(64,)] * 8


def params(shapes, matrices_only: bool) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(0)
    chosen = [s for s in shapes if len(s) == 2 or not matrices_only]
    out = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in chosen]
    for p in out:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-2
    return out


def contenders():
    def hand_split(ps):
        return [
            torch.optim.Muon([p for p in ps if p.ndim == 2], adjust_lr_fn="match_rms_adamw"),
            torch.optim.AdamW([p for p in ps if p.ndim != 2], betas=(0.9, 0.95), weight_decay=0.1),
        ]

    return {
        "Muon (2-D)": (
            True,
            lambda ps: [nnopt.Muon(ps)],
            lambda ps: [torch.optim.Muon(ps)],
        ),
        "Adafactor": (
            False,
            lambda ps: [nnopt.Adafactor(ps)],
            lambda ps: [torch.optim.Adafactor(ps)],  # (its default: the for-loop)
        ),
        "Adafactor foreach": (
            False,
            lambda ps: [nnopt.Adafactor(ps)],
            lambda ps: [torch.optim.Adafactor(ps, foreach=True)],
        ),
        "muon_for vs hand split": (False, lambda ps: [nnopt.MuonAdamW(ps)], hand_split),
    }


def time_steps(opts, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        for opt in opts:
            opt.step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, {args.rounds} rounds of {args.steps} steps")
    print(f"{'step':26s} {'nnopt ms':>9s} {'torch ms':>9s} {'ratio':>6s}")
    for name, (matrices, ours, theirs) in contenders().items():
        runs = {"nnopt": ours(params(SHAPES, matrices)), "torch": theirs(params(SHAPES, matrices))}
        for opts in runs.values():
            time_steps(opts, 2)  # warm up (state created)
        times: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(args.rounds):
            for key, opts in runs.items():
                times[key].append(time_steps(opts, args.steps))
        a, b = (statistics.median(times[k]) * 1e3 for k in ("nnopt", "torch"))
        print(f"{name:26s} {a:9.3f} {b:9.3f} {a / b:6.2f}")


if __name__ == "__main__":
    main()
