"""Where the time of a training step goes, inside `nnopt train` itself.

    python benchmarks/train_step_profile.py [--recipe examples/mnist1d_cnn_adam.toml]
        [--steps 2000] [--set train.compile=true] [--ops]

Runs the recipe's trainer (with a run directory, so metrics and checkpoints are written as in
`nnopt train`) and times each part of the loop by wrapping the functions it calls with timers
that count *self* time (a part nested in another is not counted twice): the batch indices,
slicing the batch out of the data, zero_grad, the model's forward, the loss, backward, the
optimizer step, reading the loss to the host (`.item()`, for the divergence check),
evaluation, the metrics log, checkpoints, the progress bar. What is left of the run's wall
time is the loop's own Python (the trainer's bookkeeping between those calls). Evaluation,
log and checkpoint count as a whole (the forward passes of an evaluation are evaluation).
On a CPU every op is synchronous, so a timer around a call measures the call. The timers
cost ~1 us a call; the uninstrumented run's time is printed too, for comparison.
`--ops` adds torch.profiler's table of the ops with the most self time over 200 steps.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nnopt.data.batches import Batches
from nnopt.recipe import Recipe
from nnopt.training import Trainer, loop, metrics, progress

# Parts whose callees are counted as theirs (an evaluation's forward is evaluation time).
WHOLE = {"evaluation", "metrics log (csv)", "checkpoint"}
SLICING = "batch slicing x[i], y[i]"  # Tensor.__getitem__, timed only when the loop calls it


class Timers:
    """Self time per part: a part's time less the time of the parts called inside it."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[list[Any]] = []  # [part, time of the parts inside it]

    def wrap(self, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._stack and (self._stack[-1][0] in WHOLE or part == SLICING):
                return fn(*args, **kwargs)  # (indexing inside the optimizer is its time)
            frame = [part, 0.0]
            self._stack.append(frame)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                took = time.perf_counter() - start
                self._stack.pop()
                self.spent[part] += took - frame[1]
                self.calls[part] += 1
                if self._stack:
                    self._stack[-1][1] += took

        return timed


def patch(obj: Any, name: str, timers: Timers, part: str, undo: list) -> None:
    original = getattr(obj, name)
    undo.append((obj, name, original, name in vars(obj)))
    setattr(obj, name, timers.wrap(part, original))


def instrument(trainer: Trainer, timers: Timers) -> list:
    """Wrap what the trainer's loop calls; returns what to undo."""
    undo: list = []
    original_iter = Batches.iter_from

    def iter_from(self: Batches, *args: Any) -> Any:
        stream = original_iter(self, *args)
        draw = timers.wrap("batch indices", lambda: next(stream))
        while True:
            yield draw()

    undo.append((Batches, "iter_from", original_iter, True))
    Batches.iter_from = iter_from  # type: ignore[method-assign]
    patch(torch.Tensor, "__getitem__", timers, SLICING, undo)
    patch(trainer.optimizer_for_step, "zero_grad", timers, "zero_grad", undo)
    if trainer.recipe.train.compile:  # one compiled function: no timers inside it
        patch(trainer, "forward_loss", timers, "forward + loss (compiled)", undo)
    else:
        patch(trainer.parts.model, "forward", timers, "forward", undo)
        patch(trainer.parts.loss_fn, "forward", timers, "loss", undo)
    patch(torch.Tensor, "backward", timers, "backward", undo)
    patch(trainer.optimizer_for_step, "step", timers, "optimizer step", undo)
    patch(torch.Tensor, "item", timers, "loss.item() (host read)", undo)
    patch(loop, "evaluation_sums", timers, "evaluation", undo)
    patch(metrics.MetricsLog, "append", timers, "metrics log (csv)", undo)
    patch(trainer, "_checkpoint", timers, "checkpoint", undo)
    patch(progress.Progress, "advance", timers, "progress bar", undo)
    return undo


def restore(undo: list) -> None:
    for obj, name, original, own in reversed(undo):
        if own:
            setattr(obj, name, original)
        else:
            delattr(obj, name)


def timed_run(recipe: Recipe, timers: Timers | None) -> tuple[float, float | None]:
    """(seconds of trainer.run(), compile time); instrumented when timers are given."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(recipe, Path(tmp) / "run")
        undo = instrument(trainer, timers) if timers is not None else []
        try:
            start = time.perf_counter()
            trainer.run()
            return time.perf_counter() - start, trainer.compile_time
        finally:
            restore(undo)


def op_table(recipe: Recipe, rows: int = 15) -> str:
    from torch.profiler import profile

    steps = 200
    short = recipe.with_overrides([f"train.steps={steps}", f"train.eval_every={steps}"])
    trainer = Trainer(short)
    trainer.run(stop_after=20)  # warm
    with profile() as prof:
        trainer.run()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="examples/mnist1d_cnn_adam.toml")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each; medians shown")
    parser.add_argument("--ops", action="store_true", help="add torch.profiler's op table")
    args = parser.parse_args()
    recipe = Recipe.load(args.recipe).with_overrides([f"train.steps={args.steps}", *args.set])
    # warm: kernels, allocator, and (train.compile) the compiled graph, which later trainers
    # of the same model in this process reuse
    _, compile_time = timed_run(recipe.with_overrides(["train.steps=50"]), None)
    plains, totals, parts = [], [], defaultdict(list)
    for _ in range(args.repeats):  # interleaved, so drifts in machine load hit both
        plain, _ = timed_run(recipe, None)
        plains.append(plain)
        timers = Timers()
        total, _ = timed_run(recipe, timers)
        totals.append(total)
        for part, seconds in timers.spent.items():
            parts[part].append(seconds)
        parts["rest of the loop (Python)"].append(total - sum(timers.spent.values()))
    spent = {part: statistics.median(values) for part, values in parts.items()}
    plain, total = statistics.median(plains), statistics.median(totals)
    t = recipe.train
    title = (
        f"{recipe.name}: {args.steps} steps (median of {args.repeats} runs), batch "
        f"{t.batch_size}, eval every {t.eval_every}, "
        f"checkpoint every {t.checkpoint_every or t.eval_every}, {torch.get_num_threads()} "
        f"thread(s){', compiled' if t.compile else ''}"
    )
    table = Table(title=title)
    for column in ("part", "calls", "ms per step", "share of the median total"):
        table.add_column(column, justify="left" if column == "part" else "right")
    for part, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        table.add_row(
            escape(part),
            str(timers.calls.get(part, "")),
            f"{seconds / args.steps * 1e3:.3f}",
            f"{seconds / total:.1%}",
        )
    table.add_row("total (instrumented run)", "", f"{total / args.steps * 1e3:.3f}", "100%")
    table.add_row("uninstrumented run", "", f"{plain / args.steps * 1e3:.3f}", "")
    spread = ", ".join(f"{t / args.steps * 1e3:.2f}" for t in sorted(totals + plains))
    console = Console(width=110)
    console.print(table)
    console.print(f"ms per step of every run, instrumented or not: {spread}")
    if compile_time is not None:
        console.print(f"compile time of the first run (not in its time): {compile_time:.2f} s")
    if args.ops:
        print(op_table(recipe))


if __name__ == "__main__":
    main()
