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

import torch
from torch import Tensor, nn

from nnopt.cache import cache_dir
from nnopt.training.firstbatch import leaves_no_trace

ForwardLoss = Callable[[Tensor, Tensor], Tensor]


def plain(net: nn.Module, loss_fn: nn.Module) -> ForwardLoss:
    """``(x, y) -> loss_fn(net(x), y)``: what a training step differentiates."""

    def forward_loss(x: Tensor, y: Tensor) -> Tensor:
        loss: Tensor = loss_fn(net(x), y)
        return loss

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


def forward_loss(
    net: nn.Module,
    loss_fn: nn.Module,
    *,
    compile: bool,
    warm_up_on: Callable[[], list[tuple[Tensor, Tensor]]] | None,
) -> tuple[ForwardLoss, float | None]:
    """A run's ``forward_loss`` and its compile time (None when not compiled).

    ``warm_up_on()`` gives the batches compiled on before the clock starts (the feed's
    ``warm_up_batches``); None under torchrun, where the warm-up is skipped (a backward outside
    the loop would upset DDP's gradient hooks): each rank compiles in its first steps, inside
    the training time. ``net`` is then what the step calls (DDP's wrapper), else the model.
    """
    if not compile:
        return plain(net, loss_fn), None
    fn = compiled(net, loss_fn)
    if warm_up_on is None:
        return fn, None
    return fn, warm_up(fn, net, warm_up_on())


def keeps_gradients(
    optimizer: torch.optim.Optimizer, *, built_in_model: bool, distributed: bool
) -> bool:
    """Whether the step may zero the gradients in place (``zero_grad(set_to_none=False)``).

    With flat buffers, gradients set to None come back from backward as new tensors that the
    optimizer copies into its buffer every step (measured on the MNIST-1D CNN: zero_grad, that
    copy and the allocations, ~10% of a step); zeroed in place they stay views of the buffer
    and backward accumulates straight into it, with the same values. Only for the built-in
    models in one process: each of their parameters gets a gradient in every step, so no
    parameter is stepped with a zero gradient that would have been skipped.
    """
    return bool(getattr(optimizer, "flat", False)) and built_in_model and not distributed
