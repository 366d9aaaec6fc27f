"""The training loop: batch -> forward -> loss -> backward -> step, evaluated and checkpointed.

The loop is a few named steps (train step, evaluate, checkpoint) over one `RunState`, which is
what a checkpoint holds beside the model, the optimizer (schedule step and plateau state
included) and every RNG. The data order is a pure function of (seed, epoch), so a resumed run
ends with parameters bitwise equal to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

import nnopt
from nnopt import atomic
from nnopt.data.feed import Batch, feed_for
from nnopt.distributed import ShardedOptimizer, setup
from nnopt.errors import Interrupted, RecipeError, UserError
from nnopt.init import format_decisions
from nnopt.models import count_parameters
from nnopt.names import held_out_split
from nnopt.recipe import Recipe
from nnopt.rng import rng_state, set_rng_state
from nnopt.training import compiled, schedule_free
from nnopt.training.build import RunParts, build_run
from nnopt.training.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    RunState,
    check_same_data,
    check_same_recipe,
    data_position,
    interrupts_deferred,
    load_checkpoint,
    save_checkpoint,
)
from nnopt.training.firstbatch import check_first_batch
from nnopt.training.metrics import (
    MetricsLog,
    evaluation_sums,
    final_and_best,
    metrics_from_sums,
)
from nnopt.training.passed import RecipeLike, as_recipe
from nnopt.training.progress import Progress
from nnopt.training.result import Result, StepHook
from nnopt.training.rundir import RunLock


def train(
    recipe: RecipeLike,
    out_dir: str | Path | None = None,
    *,
    resume: bool = False,
    quiet: bool = True,
    stop_after: int | None = None,
    on_step: StepHook | None = None,
    model: torch.nn.Module | None = None,
    data: object = None,
    changed: tuple[str, ...] = (),
    trust_checkpoint: bool = False,
    say: Callable[[str], None] | None = None,
) -> Result:
    """Train a recipe; write its outputs to ``out_dir`` (nothing is written when None).

    ``recipe`` is a :class:`Recipe`, a dict of its tables, TOML text or a path to a file.
    ``model`` and ``data`` are your own objects, for notebooks: the model is trained as given
    (its weights are the start: no initialization), the data is what a data factory returns
    (``(x_train, y_train[, x_test, y_test])``, a dict of those, or Datasets); the recipe then
    needs no [model] or [data] table, and records that they were passed (resuming such a run
    needs them passed again). ``changed`` names the fields a resume changes on purpose (say
    ``("train.steps",)`` to extend a run); any other difference from the recipe the run
    started with is refused.

    ``resume=True`` continues from ``out_dir/checkpoint.pt``, read with
    ``torch.load(weights_only=True)``: a checkpoint holding anything but tensors and plain values
    is refused, nothing of it run. ``trust_checkpoint=True`` unpickles one that you wrote with
    an older nnopt (format 3 or earlier) once and rewrites it in today's format; never give it
    for a file from elsewhere. ``stop_after`` ends this call
    after that many global steps (the run stays resumable), for tests and time-boxed jobs.
    ``on_step(step, total, row, held_out)`` is called after every step (``row``: the metrics
    row when that step was evaluated, else None; ``held_out``: "test" or "validation", what
    its val_* numbers are called), for progress displays such as ``compare``'s.
    ``say(line)`` gets the lines for a person (the CLI prints them): where a resume starts.
    Ctrl-C raises :class:`nnopt.errors.Interrupted` (a KeyboardInterrupt) naming the step it
    stopped at and the checkpoint kept. A non-finite loss ends the run with
    ``summary["status"] == "diverged"`` and a message naming the step and the learning rate;
    the last good checkpoint stays in place.
    """
    recipe = as_recipe(recipe, model_passed=model is not None, data_passed=data is not None)
    trainer = Trainer(recipe, out_dir, quiet=quiet, model=model, data=data)
    trainer.changed, trainer.say = frozenset(changed), say
    trainer.trust_checkpoint = trust_checkpoint
    return trainer.run(resume=resume, stop_after=stop_after, on_step=on_step)


class Trainer:
    """Runs one recipe. Build once, then :meth:`run`."""

    def __init__(
        self,
        recipe: Recipe,
        out_dir: str | Path | None = None,
        *,
        quiet: bool = True,
        model: torch.nn.Module | None = None,
        data: object = None,
    ) -> None:
        self.recipe = recipe
        self.run_dir = Path(out_dir) if out_dir is not None else None
        self.quiet = quiet
        self.ctx = setup(recipe.train.device)
        self.parts: RunParts = build_run(
            recipe, local_rank=self.ctx.local_rank, model=model, data=data
        )
        dataset = self.parts.dataset
        # Each rank trains on its slice of every batch and evaluates its slice of the
        # held-out split; the sums are reduced.
        self.feed = feed_for(dataset, self.parts.device, self.parts.batches, recipe.seed,
                             self.ctx.world, self.ctx.rank, self.parts.dtype)  # fmt: skip
        # What val_* are measured on, by the one rule (nnopt.names): "test" or "validation".
        self.held_out = held_out_split(dataset.test_is_validation)
        self.classification = dataset.task == "classification"
        self.language_model = dataset.task == "language_model"
        # What the step calls: DDP's wrapper of parts.model, the sharded wrapper of
        # parts.optimizer under torchrun; the parts themselves in one process.
        self.model_for_forward, self.optimizer_for_step = self._distribute()
        first = lambda: self.feed.warm_up_batches()[0]  # noqa: E731
        check_first_batch(self.parts.model, self.parts.loss_fn, first, recipe.model.factory)
        # loss_fn(net(x), y), compiled here when train.compile (compile time kept apart)
        self.forward_loss, self.compile_time = compiled.forward_loss(
            self.model_for_forward,
            self.parts.loss_fn,
            compile=recipe.train.compile,
            warm_up_on=None if self.ctx.enabled else self.feed.warm_up_batches,
        )
        self.keep_grads = compiled.keeps_gradients(  # zeroed in place, not set to None
            self.parts.optimizer,
            built_in_model=recipe.model.factory is None,
            distributed=self.ctx.enabled,
        )
        self.changed: frozenset[str] = frozenset()  # fields a resume changes on purpose
        self.trust_checkpoint = False  # a resume may unpickle (and convert) an old checkpoint
        self.say: Callable[[str], None] | None = None  # where a resume starts, for a person
        self._state: RunState | None = None  # the run's position, once started or restored
        self._kept: int | None = None  # the step of the last checkpoint written or restored
        self._started = time.perf_counter()  # set again by run(), less the time already spent

    def _distribute(self) -> tuple[torch.nn.Module, nnopt.Optimizer | ShardedOptimizer]:
        """DDP (or sharded optimizer state) when torchrun started several processes."""
        model, optimizer = self.parts.model, self.parts.optimizer
        world, shard = self.ctx.world, self.recipe.train.shard_state
        if not self.ctx.enabled:
            if shard:
                raise RecipeError(
                    "train.shard_state = true needs several processes: launch with "
                    "`torchrun --nproc_per_node N -m nnopt train RECIPE`"
                )
            return model, optimizer
        batch_size = self.parts.batches.batch_size
        if batch_size % world:
            raise RecipeError(
                f"the global batch size {batch_size} is not divisible by the world "
                f"size {world}: every rank takes an equal slice of each batch; set "
                f"train.batch_size to a multiple of {world}"
            )
        if shard:
            # The reduce-scatter inside the sharded step averages gradients: no DDP.
            return model, ShardedOptimizer(optimizer)
        device_ids = [self.parts.device.index] if self.parts.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids), optimizer

    # --- the loop -----------------------------------------------------------------------

    def run(
        self,
        *,
        resume: bool = False,
        stop_after: int | None = None,
        on_step: StepHook | None = None,
    ) -> Result:
        """Train to the recipe's last step (or ``stop_after``): step, evaluate, checkpoint.

        The run directory is locked for the whole run (rank 0 holds it, see ``rundir``).
        """
        holds_dir = self.run_dir is not None and self.ctx.is_main
        lock = RunLock(self.run_dir) if self.run_dir is not None and holds_dir else None
        with lock if lock is not None else contextlib.nullcontext():
            try:
                return self._run(resume, stop_after, on_step)
            except KeyboardInterrupt:  # Ctrl-C: say what the checkpoint kept, what is lost
                if self._state is None:
                    raise
                again = f"nnopt.train(recipe, {str(self.run_dir)!r}, resume=True)"
                raise Interrupted(
                    self._state.step, self._kept, again if holds_dir else ""
                ) from None

    def _run(self, resume: bool, stop_after: int | None, on_step: StepHook | None) -> Result:
        state = self._state = self._restore() if resume else self._begin()
        log = MetricsLog(self.run_dir if self.ctx.is_main else None, state.history)
        total = self.parts.total_steps
        if resume and self.say is not None:
            self.say(f"resuming {self.run_dir} from step {state.step} of {total}"
                     if state.step < total else f"{self.run_dir} already finished: all {total} "
                     "steps done, nothing to train")  # fmt: skip
        end = total if stop_after is None else min(total, stop_after)
        status, message = "finished", ""
        self._started = time.perf_counter() - state.elapsed
        self.parts.model.train()
        quiet = self.quiet or not self.ctx.is_main
        with Progress(total, self.held_out, disable=quiet, start=state.step) as bar:
            batches = self.feed.batches_from(state.step)
            while state.step < end:
                loss = self._train_step(next(batches))
                state.step += 1
                if not math.isfinite(loss):
                    status, message = "diverged", self._divergence(loss, state.step)
                    break
                state.add_loss(loss)
                bar.advance(loss, self._lr())
                evaluated = self._evaluation_due(state.step)
                saving = self._checkpoint_due(state.step, evaluated)
                with self._at_average(state.step, evaluated, saving, state.step >= end):
                    row = self._evaluate(state, log) if evaluated else None
                    if row is not None:
                        bar.show_eval(row)
                    if on_step is not None:
                        on_step(state.step, total, row, self.held_out)
                    if saving:
                        self._checkpoint(state)
        if status == "finished" and state.step < total:
            status = "stopped"
            self._checkpoint(state)  # (schedule-free: at y, in train mode, see schedule_free.py)
        log.close()
        return self._finish(state, status, message)

    def _train_step(self, batch: Batch) -> float:
        """One optimizer step on a global batch; its mean loss, the same number on every rank."""
        x, y, share = batch.x, batch.y, batch.share
        self.optimizer_for_step.zero_grad(set_to_none=not self.keep_grads)
        loss = self.forward_loss(x, y) if len(batch) else _zero_loss(self.model_for_forward, x)
        if self.parts.penalty is not None:  # [regularization] in_loss
            loss = loss + self.parts.penalty()
        (loss * share if share != 1.0 else loss).backward()  # type: ignore[no-untyped-call]
        self.optimizer_for_step.step()
        value = loss.item()
        if self.ctx.enabled:  # every rank must agree on the loss, and on stopping
            value = self.ctx.sum([value * share / self.ctx.world])[0]
        return value

    def _at_average(self, step: int, evaluated: bool, saving: bool, last: bool) -> Any:
        """A schedule-free optimizer's average for an evaluation or a checkpoint."""
        return schedule_free.around(self.optimizer_for_step, self.parts.model, self.feed,
                                    self.parts.batches.batches_per_epoch, step,
                                    evaluate=evaluated, save=saving, last=last)  # fmt: skip

    def _evaluation_due(self, step: int) -> bool:
        return step % self.recipe.train.eval_every == 0 or step == self.parts.total_steps

    def _checkpoint_due(self, step: int, evaluated: bool) -> bool:
        """Every ``train.checkpoint_every`` steps (when unset, after every evaluation), and
        always after the last step, so the final model is saved."""
        if step == self.parts.total_steps:
            return True
        every = self.recipe.train.checkpoint_every
        return evaluated if every is None else step % every == 0

    def _evaluate(self, state: RunState, log: MetricsLog) -> dict[str, Any]:
        """A metrics row on the held-out split: logged, and fed to the plateau controller."""
        sums = evaluation_sums(self.parts.model, self.parts.loss_fn, self.feed.held_out())
        row = {
            "step": state.step,
            "epoch": state.step / self.parts.batches.batches_per_epoch,
            "time": self._elapsed(),
            "lr": self._lr(),
            "train_loss": state.take_train_loss(),
            **metrics_from_sums(self.ctx.sum(list(sums)), self.classification, self.language_model),
        }
        log.append(row)  # the log extends state.history itself
        plateau = self.parts.optimizer.plateau  # (the optimizer scales its lr by it)
        if plateau is not None:
            assert self.parts.plateau_metric is not None  # (set whenever [plateau] is)
            plateau.update(row[self.parts.plateau_metric])
        return row

    def _divergence(self, loss: float, step: int) -> str:
        kept = self.run_dir is not None and (self.run_dir / CHECKPOINT_NAME).is_file()
        what = "keeping the last good checkpoint" if kept else "no checkpoint was written yet"
        return (
            f"loss became {loss} at step {step} (lr {self._lr():.3g}); stopped, {what}: "
            "try a smaller optimizer.lr"
        )

    def _lr(self) -> float:
        return float(self.optimizer_for_step.param_groups[0]["lr"])

    def _elapsed(self) -> float:
        """Wall time of the run, over every resumption."""
        return time.perf_counter() - self._started

    # --- the run directory --------------------------------------------------------------

    def _begin(self) -> RunState:
        if self.run_dir is not None and self.ctx.is_main:
            if (self.run_dir / CHECKPOINT_NAME).exists():
                # (checked again here, under the lock: the CLI's check may have raced)
                # (Python's words: `nnopt train` checks this first and says it with flags)
                raise UserError(
                    f"{self.run_dir} already holds a run: pass resume=True to continue it, or "
                    "another out"
                )
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.recipe.save(self.run_dir / "recipe.toml")
            init = format_decisions(self.parts.init_decisions)  # how each layer was drawn
            atomic.write_text(self.run_dir / "init.txt", init + "\n")
            split = getattr(self.parts.optimizer, "split_text", None)
            if split is not None:  # muon: which parameters Muon steps, and why
                atomic.write_text(self.run_dir / "muon_split.txt", split() + "\n")
        return RunState()

    def _checkpoint(self, state: RunState) -> None:
        if self.run_dir is None:
            return
        # Every rank takes part (a sharded state dict is gathered); rank 0 writes.
        optimizer_state = self.optimizer_for_step.state_dict()
        state.elapsed = self._elapsed()
        if not self.ctx.is_main:
            return
        payload = {
            "format": CHECKPOINT_FORMAT,
            "recipe": self.recipe.to_toml(),
            "world_size": self.ctx.world,
            "model": self.parts.model.state_dict(),
            "optimizer": optimizer_state,
            "rng": rng_state(),
            "run": state.to_checkpoint(),
            "data": data_position(self.parts.batches, state.step),
        }
        with interrupts_deferred():  # the step said kept is the step on disk
            save_checkpoint(self.run_dir / CHECKPOINT_NAME, payload)
            self._kept = state.step

    def _restore(self) -> RunState:
        assert self.run_dir is not None
        # Every rank reads the checkpoint; one converts a trusted old one in place.
        payload = load_checkpoint(
            self.run_dir / CHECKPOINT_NAME, trust=self.trust_checkpoint, rewrite=self.ctx.is_main
        )
        check_same_recipe(self.recipe, payload, self.run_dir, self.changed)
        if self.changed and self.ctx.is_main:  # the run's record follows the change
            self.recipe.save(self.run_dir / "recipe.toml")
        self.parts.model.load_state_dict(payload["model"])
        self.optimizer_for_step.load_state_dict(payload["optimizer"])
        schedule_free.resumed(self.optimizer_for_step)  # (saved at the average: back to y)
        set_rng_state(payload["rng"])
        check_same_data(payload.get("data"), self.parts.batches, self.run_dir)
        state = RunState.from_checkpoint(payload)
        self._kept = state.step
        return state

    def _finish(self, state: RunState, status: str, message: str) -> Result:
        state.elapsed = self._elapsed()
        summary = self._summary(state, status, message)
        if self.run_dir is not None and self.ctx.is_main:
            atomic.write_text(self.run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        return Result(state.history, summary, self.run_dir, self.parts.model)

    def _summary(self, state: RunState, status: str, message: str) -> dict[str, Any]:
        return {
            "name": self.recipe.name,
            "seed": self.recipe.seed,
            "status": status,
            "message": message,
            "steps": state.step,
            "total_steps": self.parts.total_steps,
            "wall_time": state.elapsed,
            "compile_time": self.compile_time,  # train.compile's, this process; not in wall_time
            "parameters": count_parameters(self.parts.model),
            "world_size": self.ctx.world,
            "threads": self.parts.threads,
            "metric": self.parts.metric,
            "held_out": self.held_out,
            **final_and_best(state.history, self.parts.metric, self.held_out),
        }


def _zero_loss(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A rank whose slice of a short last batch is empty still joins DDP's gradient sync."""
    return cast(Tensor, sum(p.sum() * 0.0 for p in net.parameters()))
