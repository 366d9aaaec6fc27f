"""The training step's fast paths: ``train.compile``, and gradients kept in the flat buffer.

``train.compile``: the model's forward and loss as one ``torch.compile``'d function.

The trainer calls ``forward_loss(x, y)`` for every training step. Uncompiled it is just
``loss_fn(net(x), y)``; compiled, TorchDynamo traces the same function (the model is not
replaced, so ``state_dict`` keys, checkpoints and evaluation see the original module, without
``_orig_mod.`` prefixes) and Inductor generates its forward and backward code.

Compilation is done here, before the run's clock starts, on one batch of each size the run
will use (forward and backward both: backward graphs are compiled on first use), and its
seconds are reported as ``summary["compile_time"]``, apart from ``wall_time`` and the metrics'
``time``. The warm-up leaves no trace: its gradients are returned by ``torch.autograd.grad``
rather than accumulated, and the RNG streams and the model's buffers (BatchNorm statistics)
are put back, so a compiled run draws the same batches and dropout streams as an uncompiled
one. Inductor caches what it generates (its FX graph and AOTAutograd caches, on by default)
in ``$TORCHINDUCTOR_CACHE_DIR``, here defaulting to nnopt's cache directory, so a second run
of the same model and shapes, in any process, compiles in a fraction of the first one's time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from nnopt.cache import cache_dir
from nnopt.training.firstbatch import leaves_no_trace

ForwardLoss = Callable[[Tensor, Tensor], Tensor]


def plain(net: nn.Module, loss_fn: nn.Module) -> ForwardLoss:
    """``(x, y) -> loss_fn(net(x), y)``: what a training step differentiates."""

    def forward_loss(x: Tensor, y: Tensor) -> Tensor:
        return loss_fn(net(x), y)

    return forward_loss


def compiled(net: nn.Module, loss_fn: nn.Module) -> ForwardLoss:
    """The same function through ``torch.compile``, caching in nnopt's cache directory."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "inductor"))
    return torch.compile(plain(net, loss_fn))


def warm_up(fn: ForwardLoss, model: nn.Module, batches: list[tuple[Tensor, Tensor]]) -> float:
    """Run forward and backward once per batch (compiling them); seconds taken.

    Nothing of the run changes: no ``.grad`` is written, RNG streams and buffers are restored.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    with leaves_no_trace(model):
        start = time.perf_counter()
        for x, y in batches:
            loss = fn(x, y)
            if params and loss.requires_grad:
                torch.autograd.grad(loss, params, allow_unused=True)
        seconds = time.perf_counter() - start
    return seconds


def for_trainer(trainer: Any) -> tuple[ForwardLoss, float | None]:
    """The trainer's ``forward_loss`` and its compile time (None when not compiled).

    Under torchrun the warm-up is skipped (a backward outside the loop would upset DDP's
    gradient hooks): each rank compiles in its first steps, inside the training time.
    """
    net, loss_fn = trainer.net, trainer.parts.loss_fn
    if not trainer.recipe.train.compile:
        return plain(net, loss_fn), None
    fn = compiled(net, loss_fn)
    if trainer.ctx.enabled:
        return fn, None
    return fn, warm_up(fn, trainer.parts.model, first_batches(trainer))


def first_batches(trainer: Any) -> list[tuple[Tensor, Tensor]]:
    """One batch of each size the run will use: in memory, the first examples; streamed,
    the run's first batch (an epoch's short last batch then compiles in the run itself)."""
    from nnopt.data.feed import MemoryFeed

    feed = trainer.feed
    if not isinstance(feed, MemoryFeed):
        stream = feed.batches_from(0)
        first = next(stream)
        stream.close()  # (its DataLoader workers end here)
        return [(first.x, first.y)]
    n, size = len(feed.x_train), trainer.parts.batch_size
    sizes = [size] + ([n % size] if n % size else [])  # an epoch's last batch may be short
    return [(feed.x_train[:s], feed.y_train[:s]) for s in sizes]


def keeps_gradients(trainer: Any) -> bool:
    """Whether the step may zero the gradients in place (``zero_grad(set_to_none=False)``).

    With flat buffers, gradients set to None come back from backward as new tensors that the
    optimizer copies into its buffer every step (issue 15's profile: zero_grad, that copy and
    the allocations, ~10% of a step on the MNIST-1D CNN); zeroed in place they stay views of
    the buffer and backward accumulates straight into it, with the same values. Only for the
    built-in models in one process: each of their parameters gets a gradient in every step, so
    no parameter is stepped with a zero gradient that would have been skipped.
    """
    return (
        bool(getattr(trainer.optimizer, "flat", False))
        and trainer.recipe.model.factory is None
        and not trainer.ctx.enabled
    )
