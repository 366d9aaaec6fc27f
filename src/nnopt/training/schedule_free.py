"""Schedule-free optimizers in the trainer: evaluate and save at the average, train at y.

A schedule-free optimizer (``nnopt.ScheduleFreeAdamW``, ``ScheduleFreeSGD``) trains with the
parameters at y and must be evaluated and saved at x, the average: its ``eval()`` moves them
there and ``train()`` back. Forgetting either is the package's most common mistake (an
evaluation of y reads worse than the method is; a checkpoint of y resumes wrong), and so is
evaluating BatchNorm with running statistics gathered at y. :func:`at_average` does all three
around the loop's evaluation and checkpoint; for any other optimizer it does nothing.

BatchNorm statistics are recomputed at x over the next training batches under ``no_grad``,
as the package's documentation prescribes, with the exact mean over those batches
(momentum None, as ``torch.optim.swa_utils.update_bn``) and the RNG left as it was (dropout
in train mode draws from it), so a resumed run is bitwise the uninterrupted one.

Bitwise resume also decides where each checkpoint is taken. y -> x -> y is exact only up to
rounding, so a run resumed from a checkpoint at x matches the uninterrupted run only where
that run made the same round trip: at its evaluations and checkpoints. The checkpoint a run
stopped early (``stop_after``) writes at another step is therefore taken at y, in train
mode, as the optimizer's state dict says (``train_mode``); every other one is at x.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

# The package's documentation recomputes BatchNorm statistics over about 50 batches.
BATCH_NORM_BATCHES = 50


def is_schedule_free(optimizer: object) -> bool:
    """Whether the optimizer keeps an average to be evaluated at (train()/eval() moves)."""
    return bool(getattr(optimizer, "schedule_free", False))


@contextlib.contextmanager
def at_average(
    optimizer: Any,
    model: nn.Module,
    inputs: Callable[[], Iterable[Tensor]] | None,
    *,
    stay: bool = False,
) -> Iterator[None]:
    """Within: the parameters hold the average x (``optimizer.eval()``) and, where ``inputs``
    is given and the model has BatchNorm, its statistics are those of x on those training
    inputs. After: back at y (``optimizer.train()``), unless ``stay`` (the run's end: the
    model returned is the one saved). Nothing happens for other optimizers."""
    if not is_schedule_free(optimizer):
        yield
        return
    optimizer.eval()
    if inputs is not None:
        recompute_batch_norm(model, inputs)
    yield
    if not stay:
        optimizer.train()


def resumed(optimizer: Any) -> None:
    """After a checkpoint (saved at x, in eval mode) is loaded: back to y to train on."""
    if is_schedule_free(optimizer):
        optimizer.train()


def around(
    optimizer: Any,
    model: nn.Module,
    feed: Any,
    batches_per_epoch: int,
    step: int,
    *,
    evaluate: bool,
    save: bool,
    last: bool,
) -> contextlib.AbstractContextManager[None]:
    """The trainer's seam after global step ``step``: :func:`at_average` when it evaluates
    (BatchNorm statistics from the next training batches of ``feed``, at most an epoch's)
    or saves, kept after the run's ``last`` step; nothing otherwise."""
    if not (evaluate or save):
        return contextlib.nullcontext()
    count = min(BATCH_NORM_BATCHES, batches_per_epoch)

    def inputs() -> list[Tensor]:
        return [batch.x for batch in itertools.islice(feed.batches_from(step), count)]

    return at_average(optimizer, model, inputs if evaluate else None, stay=last)


def recompute_batch_norm(model: nn.Module, inputs: Callable[[], Iterable[Tensor]]) -> None:
    """Set every BatchNorm's running statistics to the mean over ``inputs()`` (asked only
    when the model has BatchNorm) at the current parameters: forward passes in train mode,
    no gradients, the RNG untouched."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    norms = [m for m in norms if m.track_running_stats]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # the cumulative mean of the batches below
    was_training = model.training
    model.train()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=_cuda_devices(model)):
            for x in inputs():
                model(x)
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.train(was_training)


def _cuda_devices(model: nn.Module) -> set[int]:
    return {p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"}
