"""Batch index streams over data held in memory.

Like airbench and nanoGPT, the data stays in tensors and each step slices it with an index
batch: no per-sample DataLoader, no worker processes. The order of epoch ``e`` is a pure function
of ``(seed, e)``, so a run resumed at step ``s`` can regenerate exactly the batches it would have
seen (``iter_from``) without saving any sampler state.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, get_args

import torch
from torch import Tensor

# The one list of batching modes: the recipe schema's train.mode takes its values from here.
Mode = Literal["batch", "stochastic", "minibatch"]
MODES: tuple[str, ...] = get_args(Mode)
# Mixes (seed, epoch) into one generator seed; the prime keeps nearby seeds' epochs apart.
_SEED_STRIDE = 1_000_003


class BatchSizeTooLarge(ValueError):
    """A mini-batch larger than the data: the caller may say which setting to change."""

    def __init__(self, batch_size: int, n: int) -> None:
        self.batch_size, self.n = batch_size, n
        super().__init__(
            f"batch_size {batch_size} is larger than the {n} training examples; "
            f"use at most {n} (or mode 'batch')"
        )


class Batches:
    """Index batches for gradient descent over ``n`` examples.

    ``"batch"``: one step per epoch over all indices in order (full-batch gradient descent).
    ``"stochastic"``: one shuffled example per step. ``"minibatch"``: shuffled slices of
    ``batch_size``; the last, smaller slice of an epoch is kept so each example is seen once.
    ``batch_size`` is only read in ``"minibatch"`` mode.
    """

    def __init__(
        self, n: int, mode: str = "minibatch", batch_size: int | None = None, seed: int = 0
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown batching mode {mode!r}; choose one of {', '.join(MODES)}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"need at least one example to batch; got n={n!r}")
        if mode == "minibatch":
            if batch_size is None:
                raise ValueError("minibatch mode needs a batch_size")
            if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
                raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}")
            if batch_size > n:
                raise BatchSizeTooLarge(batch_size, n)
        self.n, self.mode, self.seed = n, mode, int(seed)
        size = {"batch": n, "stochastic": 1}.get(mode, batch_size)
        assert size is not None
        self.batch_size: int = size
        self.batches_per_epoch = -(-n // self.batch_size)  # ceil: the partial batch counts

    def epoch_order(self, epoch: int) -> Tensor:
        """The permutation of ``0..n-1`` used in ``epoch`` (identity in batch mode)."""
        if self.mode == "batch":
            return torch.arange(self.n)
        generator = torch.Generator().manual_seed((self.seed * _SEED_STRIDE + epoch) % 2**63)
        return torch.randperm(self.n, generator=generator)

    def epoch_batches(self, epoch: int) -> list[Tensor]:
        """The index batches of one epoch, in order."""
        return list(torch.split(self.epoch_order(epoch), self.batch_size))

    def iter_from(self, epoch: int = 0, position: int = 0) -> Iterator[Tensor]:
        """Endless batches starting at batch ``position`` of ``epoch``, then the next epochs.

        Equal to the tail of ``iter_from(0, 0)`` from step ``epoch * batches_per_epoch +
        position``; a position past the end of an epoch carries into the next ones.
        """
        if epoch < 0 or position < 0:
            raise ValueError(f"epoch and position must be >= 0; got {epoch}, {position}")
        # Validated above, outside the generator, so a bad call fails here and not at next().
        return self._stream(
            epoch + position // self.batches_per_epoch, position % self.batches_per_epoch
        )

    def _stream(self, epoch: int, position: int) -> Iterator[Tensor]:
        while True:
            yield from self.epoch_batches(epoch)[position:]
            epoch, position = epoch + 1, 0

    def __iter__(self) -> Iterator[Tensor]:
        return self.iter_from(0, 0)

    def __repr__(self) -> str:
        return (
            f"Batches(n={self.n}, mode={self.mode!r}, batch_size={self.batch_size}, "
            f"seed={self.seed})"
        )
