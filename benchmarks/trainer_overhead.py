"""Steps per second of `nnopt train` against a hand-written loop and a DataLoader loop.

All three train the same model (MNIST-1D ConvBase by default) with the same optimizer and
batch size; they differ only in the loop around forward/backward/step. Run:
    python benchmarks/trainer_overhead.py [--recipe examples/mnist1d_cnn_adam.toml] [--steps N]
        [--compile]
Targets (issue 4): nnopt within 5% of the hand-written loop; >= 1.25x the DataLoader loop.
``--compile`` adds two rows (issue 15): `nnopt train` with ``train.compile = true`` against the
hand-written loop with ``torch.compile`` of the same forward + loss, both compiled (forward and
backward) before their clock starts; those two compare with each other ("vs hand-written").
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader, TensorDataset

from nnopt.recipe import Recipe
from nnopt.training import Trainer
from nnopt.training.build import build_run


def nnopt_loop(recipe: Recipe) -> float:
    trainer = Trainer(recipe)  # built outside the timing, like the models of the other loops
    start = time.perf_counter()
    trainer.run()
    return time.perf_counter() - start


def hand_loop(recipe: Recipe, compile: bool = False) -> float:
    parts = build_run(recipe)
    x, y = parts.dataset.x_train, parts.dataset.y_train
    model, opt, loss_fn = parts.model, parts.optimizer, parts.loss_fn
    forward_loss = lambda xb, yb: loss_fn(model(xb), yb)  # noqa: E731
    if compile:
        forward_loss = torch.compile(forward_loss)
        warm = forward_loss(
            x[: parts.batches.batch_size], y[: parts.batches.batch_size]
        )  # compile, unclocked
        torch.autograd.grad(warm, list(model.parameters()))  # (and the backward graph)
    generator = torch.Generator().manual_seed(recipe.seed)
    steps, done = recipe.train.steps, 0
    start = time.perf_counter()
    while done < steps:
        for index in torch.randperm(len(x), generator=generator).split(parts.batches.batch_size):
            if done == steps:
                break
            opt.zero_grad(set_to_none=False)  # the fastest loop: grads stay in the flat buffer
            loss = forward_loss(x[index], y[index])
            loss.backward()
            opt.step()
            loss.item()  # the trainer reads every loss (divergence check); so does this loop
            done += 1
    return time.perf_counter() - start


def dataloader_loop(recipe: Recipe) -> float:
    parts = build_run(recipe)
    data = TensorDataset(parts.dataset.x_train, parts.dataset.y_train)
    loader = DataLoader(data, batch_size=parts.batches.batch_size, shuffle=True)
    model, opt, loss_fn = parts.model, parts.optimizer, parts.loss_fn
    steps, done = recipe.train.steps, 0
    start = time.perf_counter()
    while done < steps:
        for xb, yb in loader:
            if done == steps:
                break
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            loss.item()
            done += 1
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="examples/mnist1d_cnn_adam.toml")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="add the torch.compile rows")
    args = parser.parse_args()
    recipe = Recipe.load(args.recipe).with_overrides(
        [f"train.steps={args.steps}", f"train.eval_every={args.steps}"]
    )
    loops = {"nnopt train": nnopt_loop, "hand-written loop": hand_loop}
    loops["DataLoader(TensorDataset)"] = dataloader_loop
    if args.compile:
        compiled = recipe.with_overrides(["train.compile=true"])
        loops["nnopt train, compile"] = lambda _: nnopt_loop(compiled)
        loops["hand-written loop, compile"] = lambda r: hand_loop(r, compile=True)
    times: dict[str, list[float]] = {name: [] for name in loops}
    for round_ in range(args.repeats):  # interleaved, so drifts in machine load hit all
        order = list(loops) if round_ % 2 == 0 else list(reversed(loops))  # no order bias
        for name in order:
            times[name].append(loops[name](recipe))
    medians = {name: statistics.median(t) for name, t in times.items()}

    def ratio(base: str, name: str) -> float:
        """Median over rounds of base / name in the same round: robust to slow drifts."""
        return statistics.median(b / t for b, t in zip(times[base], times[name], strict=True))

    table = Table(title=f"{recipe.name}: {args.steps} steps, median of {args.repeats} rounds")
    for column in ("loop", "time (s)", "steps/s", "vs hand-written", "vs DataLoader"):
        table.add_column(column, justify="left" if column == "loop" else "right")
    for name, seconds in medians.items():
        # the compiled trainer is compared with the compiled hand loop
        base = "hand-written loop, compile" if name.endswith("compile") else "hand-written loop"
        table.add_row(
            name,
            f"{seconds:.2f}",
            f"{args.steps / seconds:.0f}",
            f"{ratio(base, name):.3f}x",
            f"{ratio('DataLoader(TensorDataset)', name):.3f}x",
        )
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
