"""Datasets read example by example during training, for data that does not fit in memory.

A data factory (or ``nnopt.train(data=...)``) may hand over ``torch.utils.data.Dataset``s of
``(x, y)`` pairs. Small ones are read into memory once (``data.loader = "auto"`` under
:data:`MEMORY_LIMIT`, or ``"memory"``) and train like tensors; the others stay
:class:`StreamedData`, fed through a ``DataLoader`` (``feed.StreamFeed``). What the model and
the loss need is read from the first training example and the Dataset's own attributes:

- ``input_shape``: the shape of the first ``x``;
- the task: ``data.task``, else classification for an integer scalar ``y``, regression for a
  floating one; the class count (or a language model's vocabulary) from the factory's
  ``num_classes``, else the Dataset's ``classes`` (``ImageFolder`` has it) or ``targets``.

Streamed examples are used as given: no standardization (it would need a pass over the data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nnopt.data.dataset import split_indices
from nnopt.errors import RecipeError
from nnopt.names import held_out_split

# Datasets estimated below this many bytes (examples x the first example's size) are read
# into memory by data.loader = "auto": slicing tensors is faster than any DataLoader.
MEMORY_LIMIT = 2 * 2**30
LOADERS = ("auto", "memory", "stream")
FIELD = "data.factory"


@dataclass
class StreamedData:
    """A training and a held-out Dataset, read during training; the facts the run needs."""

    name: str
    train: Any  # torch.utils.data.Dataset of (x, y) pairs
    test: Any
    task: str
    input_shape: tuple[int, ...]
    num_classes: int | None
    target_dim: int | None  # regression: values per example
    test_is_validation: bool
    workers: int = 0
    pin_memory: bool = False

    @property
    def n_train(self) -> int:
        return len(self.train)

    @property
    def output_dim(self) -> int:
        if self.task in ("classification", "language_model"):
            assert self.num_classes is not None
            return self.num_classes
        assert self.target_dim is not None
        return self.target_dim

    def describe(self) -> str:
        split = held_out_split(self.test_is_validation)
        kind = (
            f"regression, {self.output_dim} target(s)"
            if self.task == "regression"
            else f"{self.task}, {self.num_classes} classes"
        )
        return (
            f"{self.name}: {kind}; examples shaped {self.input_shape}; {len(self.train)} train / "
            f"{len(self.test)} {split} examples, streamed by a DataLoader "
            f"({self.workers} workers); not standardized"
        )


def estimated_bytes(dataset: Any) -> int:
    """Examples times the size of the first example's ``x`` and ``y``."""
    x, y = first_pair(dataset, "training")
    return len(dataset) * (_nbytes(x) + _nbytes(y))


def first_pair(dataset: Any, split: str) -> tuple[Any, Any]:
    if len(dataset) == 0:
        raise RecipeError(f"{FIELD}: the {split} Dataset is empty")
    try:
        item = dataset[0]
        x, y = item
    except Exception as exc:
        raise RecipeError(
            f"{FIELD}: the {split} Dataset's items must be (x, y) pairs; item 0 is not "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    return x, y


def _nbytes(value: Any) -> int:
    import torch

    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    return int(np.asarray(value).nbytes)


def streamed(
    name: str,
    train: Any,
    test: Any | None,
    *,
    task: str,
    num_classes: int | None,
    seed: int,
    val_fraction: float,
    workers: int,
    pin_memory: bool,
) -> StreamedData:
    """Check the Datasets and read what the run needs from them; carve a seeded validation
    split (``val_fraction``) from ``train`` when there is no ``test``."""
    import torch

    x, y = first_pair(train, "training")
    x, y = torch.as_tensor(np.asarray(x)), torch.as_tensor(np.asarray(y))
    integral = not (y.is_floating_point() or y.is_complex())
    if task == "auto":
        if y.dim() == 0 and integral:
            task = "classification"
        elif y.is_floating_point():
            task = "regression"
        else:
            raise RecipeError(
                f"{FIELD}: cannot tell the task from targets shaped {tuple(y.shape)} "
                f"({y.dtype}); set data.task"
            )
    if task in ("classification", "language_model"):
        if not integral:
            raise RecipeError(
                f"data.task: {task} needs integer targets; the Dataset's are {y.dtype}"
            )
        num_classes = num_classes or _class_count(train)
        if num_classes is None:
            what = "classes" if task == "classification" else "the vocabulary size"
            raise RecipeError(
                f"{FIELD}: cannot tell how many {what} a streamed Dataset has: return a dict "
                "with 'num_classes' (or give the Dataset a 'classes' list)"
            )
    test_is_validation = test is None
    if test is None:
        # Stratified as data in memory is, when the labels can be had without reading every
        # example (a `targets` attribute, as torchvision's data sets have).
        targets = getattr(train, "targets", None) if task == "classification" else None
        labels = None if targets is None else np.asarray(targets)
        if labels is not None and len(labels) != len(train):
            labels = None
        train_idx, val_idx = split_indices(len(train), val_fraction, seed, labels)
        train, test = (torch.utils.data.Subset(train, i.tolist()) for i in (train_idx, val_idx))
    else:
        test_x, _ = first_pair(test, "test")
        if tuple(np.shape(test_x)) != tuple(x.shape):
            raise RecipeError(
                f"{FIELD}: test examples are shaped {tuple(np.shape(test_x))}, training "
                f"{tuple(x.shape)}"
            )
    return StreamedData(
        name=name,
        train=train,
        test=test,
        task=task,
        input_shape=tuple(int(n) for n in x.shape),
        num_classes=num_classes if task != "regression" else None,
        target_dim=max(y.numel(), 1) if task == "regression" else None,
        test_is_validation=test_is_validation,
        workers=workers,
        pin_memory=pin_memory,
    )


def _class_count(dataset: Any) -> int | None:
    classes = getattr(dataset, "classes", None)
    if classes is not None:
        return len(classes)
    targets = getattr(dataset, "targets", None)
    if targets is not None and len(targets):
        return int(np.max(np.asarray(targets))) + 1
    return None
