"""The training loop: batch -> forward -> loss -> backward -> step, evaluated and checkpointed.

The data order is a pure function of (seed, epoch), and the checkpoint holds the model, the
optimizer (schedule step and plateau state included), every RNG and the position in the data,
so a resumed run ends with parameters bitwise equal to an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from nnopt import atomic
from nnopt.distributed import ShardedOptimizer, setup
from nnopt.models import count_parameters
from nnopt.regularization import penalty
from nnopt.rng import rng_state, set_rng_state
from nnopt.training.build import RunParts, build_run
from nnopt.training.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from nnopt.training.metrics import MetricsLog, evaluation_sums, metrics_from_sums
from nnopt.training.progress import Progress


@dataclass
class Result:
    """What a run produced: one row per evaluation and the summary written to summary.json."""

    history: list[dict[str, Any]]
    summary: dict[str, Any]
    run_dir: Path | None = None
    model: Any = field(default=None, repr=False)

    @property
    def diverged(self) -> bool:
        return self.summary.get("status") == "diverged"


def train(
    recipe: Any,
    out_dir: str | Path | None = None,
    *,
    resume: bool = False,
    quiet: bool = True,
    stop_after: int | None = None,
) -> Result:
    """Train a recipe; write its outputs to ``out_dir`` (nothing is written when None).

    ``resume=True`` continues from ``out_dir/checkpoint.pt``. ``stop_after`` ends this call
    after that many global steps (the run stays resumable), for tests and time-boxed jobs.
    A non-finite loss ends the run with ``summary["status"] == "diverged"`` and a message
    naming the step and the learning rate; the last good checkpoint stays in place.
    """
    return Trainer(recipe, out_dir, quiet=quiet).run(resume=resume, stop_after=stop_after)


class Trainer:
    """Runs one recipe. Build once, then :meth:`run`."""

    def __init__(self, recipe: Any, out_dir: str | Path | None = None, *, quiet: bool = True):
        self.recipe = recipe
        self.run_dir = Path(out_dir) if out_dir is not None else None
        self.quiet = quiet
        self.ctx = setup(recipe.train.device)
        self.parts: RunParts = build_run(recipe, local_rank=self.ctx.local_rank)
        dataset, device = self.parts.dataset, self.parts.device
        self.x_train, self.y_train = dataset.x_train.to(device), dataset.y_train.to(device)
        # Each rank evaluates its slice of the held-out split; the sums are reduced.
        x_val, y_val = dataset.x_test.to(device), dataset.y_test.to(device)
        self.x_val = x_val.tensor_split(self.ctx.world)[self.ctx.rank]
        self.y_val = y_val.tensor_split(self.ctx.world)[self.ctx.rank]
        self.classification = dataset.task == "classification"
        self.net, self.optimizer = self._distribute()
        self.batches = self.parts.batches

    def _distribute(self) -> tuple[torch.nn.Module, Any]:
        """DDP (or sharded optimizer state) when torchrun started several processes."""
        model, optimizer = self.parts.model, self.parts.optimizer
        world, shard = self.ctx.world, self.recipe.train.shard_state
        if not self.ctx.enabled:
            if shard:
                raise ValueError(
                    "train.shard_state = true needs several processes: launch with "
                    "`torchrun --nproc_per_node N -m nnopt train RECIPE`"
                )
            return model, optimizer
        if self.parts.batch_size % world:
            raise ValueError(
                f"the global batch size {self.parts.batch_size} is not divisible by the world "
                f"size {world}: every rank takes an equal slice of each batch; set "
                f"train.batch_size to a multiple of {world}"
            )
        if shard:
            # The reduce-scatter inside the sharded step averages gradients: no DDP.
            return model, ShardedOptimizer(optimizer)
        device_ids = [self.parts.device.index] if self.parts.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids), optimizer

    def _local(self, index: torch.Tensor) -> tuple[torch.Tensor, float]:
        """This rank's slice of a global batch and its share of the global mean loss."""
        if not self.ctx.enabled:
            return index, 1.0
        local = index.tensor_split(self.ctx.world)[self.ctx.rank]
        # DDP averages gradients over ranks; weighting each rank's mean loss by its share
        # makes that average the global batch's mean gradient even for uneven slices.
        return local, self.ctx.world * len(local) / len(index)

    # --- state ------------------------------------------------------------------------

    def _checkpoint(self, step: int, log: MetricsLog, elapsed: float, window: list) -> None:
        if self.run_dir is None:
            return
        # Every rank takes part (a sharded state dict is gathered); rank 0 writes.
        optimizer_state = self.optimizer.state_dict()
        if not self.ctx.is_main:
            return
        payload = {
            "format": 1,
            "step": step,
            "world_size": self.ctx.world,
            "model": self.parts.model.state_dict(),
            "optimizer": optimizer_state,
            "rng": rng_state(),
            "history": log.rows,
            "elapsed": elapsed,
            "window": window,
        }
        save_checkpoint(self.run_dir / CHECKPOINT_NAME, payload)

    def _restore(self) -> tuple[int, list[dict[str, Any]], float, list]:
        assert self.run_dir is not None
        payload = load_checkpoint(self.run_dir / CHECKPOINT_NAME)
        self.parts.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        set_rng_state(payload["rng"])
        return payload["step"], payload["history"], payload["elapsed"], payload["window"]

    # --- the loop -----------------------------------------------------------------------

    def run(self, *, resume: bool = False, stop_after: int | None = None) -> Result:
        recipe, parts, main = self.recipe, self.parts, self.ctx.is_main
        model, net, opt, loss_fn = parts.model, self.net, self.optimizer, parts.loss_fn
        step, rows, elapsed, window = 0, [], 0.0, [0.0, 0]
        if resume:
            step, rows, elapsed, window = self._restore()
        elif self.run_dir is not None and main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            recipe.save(self.run_dir / "recipe.toml")
        log = MetricsLog(self.run_dir if main else None, rows)
        total, eval_every = parts.total_steps, recipe.train.eval_every
        checkpoint_every = recipe.train.checkpoint_every
        reg = recipe.regularization
        in_loss_penalty = reg.in_loss and (reg.l1 or reg.l2)
        per_epoch = self.batches.batches_per_epoch
        end = total if stop_after is None else min(total, stop_after)
        status, message = "finished", ""
        model.train()
        started = time.perf_counter() - elapsed
        with Progress(total, disable=self.quiet or not main, start=step) as bar:
            batches = self.batches.iter_from(step // per_epoch, step % per_epoch)
            while step < end:
                index, share = self._local(next(batches))
                x, y = self.x_train[index], self.y_train[index]
                opt.zero_grad()
                loss = loss_fn(net(x), y) if len(index) else _zero_loss(net, x)
                if in_loss_penalty:
                    loss = loss + penalty(model, l1=reg.l1, l2=reg.l2, exclude=tuple(reg.exclude))
                (loss * share if share != 1.0 else loss).backward()
                opt.step()
                value = loss.item()
                if self.ctx.enabled:  # every rank must agree on the loss, and on stopping
                    value = self.ctx.sum([value * share / self.ctx.world])[0]
                step += 1
                if not math.isfinite(value):
                    lr = opt.param_groups[0]["lr"]
                    status = "diverged"
                    message = (
                        f"loss became {value} at step {step} (lr {lr:.3g}); stopped, "
                        "keeping the last good checkpoint: try a smaller optimizer.lr"
                    )
                    break
                window[0] += value
                window[1] += 1
                bar.advance(value, opt.param_groups[0]["lr"])
                if step % eval_every == 0 or step == total:
                    row = self._evaluate(step, per_epoch, started, window)
                    window = [0.0, 0]
                    log.append(row)
                    bar.show_eval(row)
                    if parts.plateau is not None:
                        parts.plateau.update(row[recipe.plateau.metric])
                    if checkpoint_every is None:
                        self._checkpoint(step, log, time.perf_counter() - started, window)
                if checkpoint_every is not None and step % checkpoint_every == 0:
                    self._checkpoint(step, log, time.perf_counter() - started, window)
        if status == "finished" and step < total:
            status = "stopped"
            self._checkpoint(step, log, time.perf_counter() - started, window)
        log.close()
        summary = self._summary(log.rows, step, time.perf_counter() - started, status, message)
        if self.run_dir is not None and main:
            atomic.write_text(self.run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        return Result(history=log.rows, summary=summary, run_dir=self.run_dir, model=model)

    def _evaluate(self, step: int, per_epoch: int, started: float, window: list) -> dict:
        sums = evaluation_sums(self.parts.model, self.parts.loss_fn, self.x_val, self.y_val)
        metrics = metrics_from_sums(self.ctx.sum(list(sums)), self.classification)
        return {
            "step": step,
            "epoch": step / per_epoch,
            "time": time.perf_counter() - started,
            "lr": self.parts.optimizer.param_groups[0]["lr"],
            "train_loss": window[0] / window[1] if window[1] else math.nan,
            **metrics,
        }

    def _summary(self, rows: list, step: int, wall: float, status: str, message: str) -> dict:
        metric = "val_accuracy" if self.classification else "val_loss"
        pick = max if self.classification else min
        finite = [r for r in rows if not math.isnan(r[metric])]
        best = pick(finite, key=lambda r: r[metric]) if finite else None
        final = rows[-1] if rows else {}
        return {
            "name": self.recipe.name,
            "seed": self.recipe.seed,
            "status": status,
            "message": message,
            "steps": step,
            "total_steps": self.parts.total_steps,
            "wall_time": wall,
            "parameters": count_parameters(self.parts.model),
            "world_size": self.ctx.world,
            "metric": metric,
            "final": {k: final.get(k) for k in ("train_loss", "val_loss", "val_accuracy", "lr")},
            "best": {"step": best["step"], metric: best[metric]} if best else None,
        }


def _zero_loss(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A rank whose slice of a short last batch is empty still joins DDP's gradient sync."""
    return sum(p.sum() * 0.0 for p in net.parameters())
