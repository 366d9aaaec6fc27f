"""Schedule-free steps: nnopt (native kernels, per tensor and flat) against the reference
``schedulefree`` package (1.4.1; its foreach path, its default, and its for-loop), and the
memory floor, side by side in one run (``nnopt.bench.step.interleaved_medians``).

    .venv/bin/python benchmarks/schedule_free_step.py [--quick]

The floor is the time to stream the bytes the step must move (AdamW: read p, g, z, v and
write p, z, v; SGD: read p, g, z and write p, z) at the bandwidth ``copy_`` reaches on the
same buffers. Ratios are medians over interleaved rounds; the machine is shared and noisy,
so compare the ratios within one table, not times across runs.
"""

from __future__ import annotations

import argparse

import schedulefree
import torch

import nnopt
from nnopt.bench.step import interleaved_medians

SHAPES = {
    "8x2.5M": [(2_500_000,)] * 8,  # large tensors: memory-bound
    "CNN (MNIST-1D)": [(25, 1, 5), (25,), (25, 25, 3), (25,), (25, 25, 3), (25,), (10, 125), (10,)],
    "2000x1000": [(1000,)] * 2000,  # many small tensors: per-tensor overhead
}
KINDS = {
    "adamw": (nnopt.ScheduleFreeAdamW, schedulefree.AdamWScheduleFree, dict(lr=1e-3), 7),
    "sgd": (nnopt.ScheduleFreeSGD, schedulefree.SGDScheduleFree, dict(lr=0.1), 5),
}


def tensors(shapes) -> list[torch.Tensor]:
    out = [torch.randn(s).requires_grad_() for s in shapes]
    for p in out:
        p.grad = torch.randn_like(p) * 1e-3
    return out


def steps_for(kind: str, shapes) -> dict:
    ours_cls, theirs_cls, options, passes = KINDS[kind]
    made = {}
    for name, build in {
        "package foreach": lambda ps: theirs_cls(ps, foreach=True, **options),
        "package loop": lambda ps: theirs_cls(ps, foreach=False, **options),
        "nnopt": lambda ps: ours_cls(ps, **options),
        "nnopt flat": lambda ps: ours_cls(ps, flat=True, **options),
    }.items():
        opt = build(tensors(shapes))
        opt.train()
        opt.step()  # state created outside the timing
        made[name] = opt.step
    n = sum(torch.Size(s).numel() for s in shapes)
    # copy_ reads and writes each element: a copy of n * passes / 2 moves the step's bytes.
    src = torch.randn(n * passes // 2)
    dst = torch.empty_like(src)
    made["floor"] = lambda: dst.copy_(src)
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeats = 15 if args.quick else 51
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {repeats} rounds")
    print("| optimizer | shapes | package foreach ms | nnopt ms | nnopt flat ms | "
          "foreach / nnopt | nnopt / floor | package loop / nnopt |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for kind in KINDS:
        for label, shapes in SHAPES.items():
            t = interleaved_medians(steps_for(kind, shapes), repeats)
            ms = {k: v * 1e3 for k, v in t.items()}
            print(
                f"| {kind} | {label} | {ms['package foreach']:.3f} | {ms['nnopt']:.3f} | "
                f"{ms['nnopt flat']:.3f} | {t['package foreach'] / t['nnopt']:.2f}x | "
                f"{t['nnopt'] / t['floor']:.2f}x | {t['package loop'] / t['nnopt']:.2f}x |"
            )


if __name__ == "__main__":
    main()
