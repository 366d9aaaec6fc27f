"""How a run's batches reach the model: slices of tensors in memory, or a DataLoader.

Both feeds serve the same index batches (``Batches``, a pure function of ``(seed, epoch)``),
so the data a step sees depends on the step alone, whichever feed serves it and wherever a
run was resumed. Under torchrun each rank takes its slice of every global batch and of the
held-out split.

The streamed feed seeds every random stream (torch, NumPy, Python) from ``(seed, step)``
before it reads a batch's examples, so a Dataset's random transforms (augmentation) draw the
same numbers whatever ``data.workers`` is and after a resume; in the main process (``workers =
0``) the training streams are put back afterwards, so dropout draws what it would without the
loader.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from nnopt.data.batches import Batches
from nnopt.data.dataset import Dataset
from nnopt.data.streamed import StreamedData
from nnopt.errors import RecipeError

EVAL_CHUNK = 4096  # held-out examples per forward pass (memory feed)
STREAM_EVAL_BATCH = 256  # held-out examples per DataLoader batch
# Keeps the evaluation's seeds (one per chunk) clear of the training steps'.
_EVAL_SEED_OFFSET = 2**40
_SEED_STRIDE = 1_000_003
FIELD = "data.factory"


@dataclass
class Batch:
    """One step's examples on this rank, and its share of the global batch's mean loss."""

    x: Tensor
    y: Tensor
    share: float = 1.0

    def __len__(self) -> int:
        return len(self.x)


def local_slice(index: Tensor, world: int, rank: int) -> tuple[Tensor, float]:
    """This rank's slice of a global batch and its share of the global mean loss.

    DDP averages gradients over ranks; weighting each rank's mean loss by
    ``world * len(local) / len(index)`` makes that average the global batch's mean gradient
    even for uneven slices.
    """
    if world == 1:
        return index, 1.0
    local = index.tensor_split(world)[rank]
    return local, world * len(local) / len(index)


def as_input(x: Tensor, device: torch.device, dtype: torch.dtype | None) -> Tensor:
    """``x`` on ``device``, floating inputs in ``dtype`` (the model's: model.dtype; None: as
    loaded); integer inputs (token ids) as they are."""
    if dtype is not None and x.is_floating_point():
        return x.to(device=device, dtype=dtype)
    return x.to(device)


class MemoryFeed:
    """Tensors on the run's device, sliced by each index batch (airbench's way)."""

    def __init__(self, dataset: Dataset, device: torch.device, batches: Batches, world: int = 1,
                 rank: int = 0, dtype: torch.dtype | None = None):  # fmt: skip
        self.batches, self.world, self.rank = batches, world, rank
        self.x_train = as_input(dataset.x_train, device, dtype)
        self.y_train = dataset.y_train.to(device)
        self.x_val = as_input(dataset.x_test, device, dtype).tensor_split(world)[rank]
        self.y_val = dataset.y_test.to(device).tensor_split(world)[rank]

    def batches_from(self, step: int) -> Iterator[Batch]:
        """Endless batches from global step ``step`` on."""
        for index in self.batches.iter_from(*divmod(step, self.batches.batches_per_epoch)):
            local, share = local_slice(index, self.world, self.rank)
            yield Batch(self.x_train[local], self.y_train[local], share)

    def warm_up_batches(self) -> list[tuple[Tensor, Tensor]]:
        """One batch of each size the run will use (an epoch's last batch may be short): the
        first examples, what ``train.compile`` compiles on before the clock starts."""
        n, size = len(self.x_train), self.batches.batch_size
        sizes = [size] + ([n % size] if n % size else [])
        return [(self.x_train[:s], self.y_train[:s]) for s in sizes]

    def held_out(self) -> Iterator[tuple[Tensor, Tensor]]:
        """This rank's slice of the held-out split, in chunks."""
        for start in range(0, len(self.x_val), EVAL_CHUNK):
            yield self.x_val[start : start + EVAL_CHUNK], self.y_val[start : start + EVAL_CHUNK]


class StreamFeed:
    """A DataLoader over a Dataset, reading each index batch with ``data.workers`` processes."""

    def __init__(self, data: StreamedData, device: torch.device, batches: Batches, seed: int,
                 world: int = 1, rank: int = 0, dtype: torch.dtype | None = None):  # fmt: skip
        self.data, self.device, self.batches = data, device, batches
        self.seed, self.world, self.rank = seed, world, rank
        self.label_dtype = torch.float32 if data.task == "regression" else torch.int64
        floating = dtype if dtype is not None else torch.float32  # (the model's: model.dtype)
        self.input_dtype = torch.int64 if data.task == "language_model" else floating

    def _loader(self, dataset: Any, keys: Any) -> Iterator[Any]:
        reader = _BatchReader(dataset, self.input_dtype, self.label_dtype)
        workers = self.data.workers
        return iter(
            torch.utils.data.DataLoader(
                reader,
                sampler=keys,
                batch_size=None,  # each key is a whole batch: the reader collates it
                num_workers=workers,
                pin_memory=self.data.pin_memory and self.device.type == "cuda",
                prefetch_factor=2 if workers else None,
                # Its own generator: the loader draws a base seed when it starts, which from
                # the global stream would shift every dropout mask after it.
                generator=torch.Generator().manual_seed(self.seed),
            )
        )

    def batches_from(self, step: int) -> Generator[Batch]:
        with _one_line():
            for x, y, share in self._loader(self.data.train, _TrainKeys(self, step)):
                yield Batch(self._to_device(x), self._to_device(y), share)

    def warm_up_batches(self) -> list[tuple[Tensor, Tensor]]:
        """The run's first batch (an epoch's short last batch then compiles in the run)."""
        stream = self.batches_from(0)
        first = next(stream)
        stream.close()  # (its DataLoader workers end here)
        return [(first.x, first.y)]

    def held_out(self) -> Iterator[tuple[Tensor, Tensor]]:
        index = torch.arange(len(self.data.test)).tensor_split(self.world)[self.rank]
        keys = [
            (self._seed(_EVAL_SEED_OFFSET + i), chunk.tolist(), 1.0)
            for i, chunk in enumerate(torch.split(index, STREAM_EVAL_BATCH))
        ]
        with _one_line():
            for x, y, _ in self._loader(self.data.test, keys):
                yield self._to_device(x), self._to_device(y)

    def _seed(self, step: int) -> int:
        return (self.seed * _SEED_STRIDE + step) % 2**63

    def _to_device(self, tensor: Tensor) -> Tensor:
        return tensor.to(self.device, non_blocking=self.data.pin_memory)


class _TrainKeys:
    """The DataLoader's sampler: ``(seed of the step, this rank's indices, share)`` per step."""

    def __init__(self, feed: StreamFeed, step: int):
        self.feed, self.step = feed, step

    def __iter__(self) -> Iterator[tuple[int, list[int], float]]:
        feed, step = self.feed, self.step
        per_epoch = feed.batches.batches_per_epoch
        for index in feed.batches.iter_from(*divmod(step, per_epoch)):
            local, share = local_slice(index, feed.world, feed.rank)
            yield feed._seed(step), local.tolist(), share
            step += 1


class _BatchReader(torch.utils.data.Dataset[tuple[Tensor, Tensor, float]]):
    """Reads one batch's examples under its own seed and stacks them."""

    def __init__(self, dataset: Any, input_dtype: torch.dtype, label_dtype: torch.dtype):
        self.dataset, self.input_dtype, self.label_dtype = dataset, input_dtype, label_dtype

    def __getitem__(self, key: tuple[int, list[int], float]) -> tuple[Tensor, Tensor, float]:
        seed, indices, share = key
        with _seeded(seed):
            items = [self._item(i) for i in indices]
        try:
            xs = torch.stack([torch.as_tensor(np.asarray(x)) for x, _ in items])
            ys = torch.stack([torch.as_tensor(np.asarray(y)) for _, y in items])
        except (TypeError, ValueError, RuntimeError) as exc:
            raise RecipeError(
                f"{FIELD}: the Dataset's examples cannot be stacked into a batch "
                f"({type(exc).__name__}: {str(exc).splitlines()[0]}); every x must have one "
                "shape and every y another"
            ) from None
        # Contiguous, as in memory: stacking permuted examples may give channels_last.
        xs = xs.to(self.input_dtype).contiguous()
        return xs, ys.to(self.label_dtype).contiguous(), share

    def _item(self, i: int) -> tuple[Any, Any]:
        try:
            x, y = self.dataset[i]
        except Exception as exc:  # the user's code: one line, not a worker's traceback
            text = str(exc).strip().splitlines()
            raise RecipeError(
                f"{FIELD}: reading example {i} of the Dataset failed "
                f"({type(exc).__name__}: {text[0] if text else 'no detail'})"
            ) from None
        return x, y

    def __len__(self) -> int:  # (never asked for by the keyed sampler; here for DataLoader)
        return len(self.dataset)


def feed_for(
    dataset: Dataset | StreamedData,
    device: torch.device,
    batches: Batches,
    seed: int,
    world: int = 1,
    rank: int = 0,
    dtype: torch.dtype | None = None,
) -> MemoryFeed | StreamFeed:
    """The feed of a run's data: streamed Datasets get a DataLoader, tensors are sliced.
    ``dtype``: the model's (model.dtype), what floating inputs are fed in; None: as loaded."""
    if isinstance(dataset, StreamedData):
        return StreamFeed(dataset, device, batches, seed, world, rank, dtype)
    return MemoryFeed(dataset, device, batches, world, rank, dtype)


@contextlib.contextmanager
def _one_line() -> Iterator[None]:
    """A RecipeError raised in a DataLoader worker comes back wrapped in the worker's
    traceback; keep only its own line."""
    try:
        yield
    except RecipeError as exc:
        if len(exc.problems) == 1:
            raise
        # The wrapped text ends "...RecipeError: data.factory: ...", the message itself.
        lines = [ln[ln.index(f"{FIELD}:") :] for ln in exc.problems if f"{FIELD}:" in ln]
        if not lines:
            raise
        raise RecipeError(lines[-1]) from None


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Every random stream seeded for the block, and put back after it."""
    saved = torch.get_rng_state(), np.random.get_state(), random.getstate()
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    try:
        yield
    finally:
        torch.set_rng_state(saved[0])
        np.random.set_state(saved[1])
        random.setstate(saved[2])
