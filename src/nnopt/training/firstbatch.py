"""The first-batch check: the user's model, forward and loss, on one batch before training.

A shape mistake in a model a recipe names (or one passed from Python) would otherwise surface
in the first training step as a traceback through nnopt's loop, reported as a bug in nnopt.
Here it becomes one line naming ``model.factory``, the batch's shapes and torch's message
(``--debug`` shows the traceback). The check leaves no trace: no gradient is taken, and the
model's buffers (BatchNorm statistics) and every RNG stream are put back, so a run is the
same number for number with or without it. The built-in models are not checked: an error in
them is nnopt's, and keeps its traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from nnopt import usercode
from nnopt.errors import RecipeError
from nnopt.rng import rng_state, set_rng_state


@contextlib.contextmanager
def leaves_no_trace(model: nn.Module) -> Iterator[None]:
    """Whatever runs inside, the RNG streams and the model's buffers are as before."""
    kept_buffers = [b.detach().clone() for b in model.buffers()]
    kept_rng = rng_state()
    try:
        yield
    finally:
        set_rng_state(kept_rng)
        with torch.no_grad():
            for buffer, kept in zip(model.buffers(), kept_buffers, strict=True):
                buffer.copy_(kept)


def whose(factory: str | None) -> str | None:
    """How an error names the model of a recipe's ``model.factory``; None: a built-in one."""
    if factory is None:
        return None
    if factory == usercode.PASSED:
        return "model: the model passed from Python"
    return f"model.factory: the model {factory} built"


def check_first_batch(
    model: nn.Module,
    loss_fn: nn.Module,
    batch: Callable[[], tuple[Tensor, Tensor]],
    factory: str | None,
) -> None:
    """One forward and loss of a user's model on ``batch()`` (the run's first batch, or one
    of its size); the exception it raises as a RecipeError."""
    who = whose(factory)
    if who is None:
        return
    x, y = batch()
    try:
        with leaves_no_trace(model), torch.no_grad():
            loss_fn(model(x), y)
    except Exception as exc:  # anything the user's code raised, torch's checks included
        message = next((ln for ln in str(exc).splitlines() if ln.strip()), "")
        raise RecipeError(
            f"{who} fails on the first batch (x {_shape(x)}, y {_shape(y)}): "
            f"{type(exc).__name__}: {message}"
        ) from exc


def _shape(tensor: Any) -> str:
    if not isinstance(tensor, Tensor):
        return type(tensor).__name__
    dtype = str(tensor.dtype).removeprefix("torch.")
    return f"of shape {tuple(tensor.shape)} {dtype}"
