"""The in-memory `Dataset` and the steps every source goes through: split, check, standardize.

Every loader (embedded, synthetic, user file) produces plain numpy `Arrays`; `finalize` turns
them into a `Dataset` of torch tensors the same way for all of them, so splitting, NaN checks and
standardization behave identically whatever the source.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch is imported where tensors are made: `nnopt datasets` needs none
    from torch import Tensor

from nnopt.errors import DataError
from nnopt.names import held_out_split

# The one list of tasks (the recipe's data.task): a language model's examples are token ids
# (examples, time) and its targets the next ids, of the same shape.
TASKS = ("classification", "regression", "language_model")
# Integer-valued targets with at most this many distinct values are read as class labels.
MAX_CLASSES = 50
# A feature (nearly) constant on the training split is centred but not scaled, as
# scikit-learn's StandardScaler does: dividing by its tiny std would turn any other value it
# takes in the evaluation split (a digits pixel blank in every training image) into ~1e8.
CONSTANT_STD = 1e-6


@dataclass
class Arrays:
    """What a loader hands over: features and targets, with a test split when the source has one."""

    x: np.ndarray
    y: np.ndarray
    task: str
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    classes: list[Any] | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    # The loader carved x_test from the training data itself (digits): reports call it the
    # validation split, as they do a split nnopt carves here (nnopt.names.held_out_split).
    test_is_validation: bool = False


@dataclass
class Dataset:
    """Train and evaluation tensors held in memory.

    ``x_*`` are float32 ``(n, features)``; ``y_*`` are int64 ``(n,)`` labels for classification
    and float32 ``(n, targets)`` for regression. ``x_test`` is the source's own test split when it
    has one, else a validation split carved from the training data (``test_is_validation``).
    """

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    task: str
    num_classes: int | None = None
    classes: list[Any] | None = None
    mean: Tensor | None = None  # per-feature statistics of the training split, when standardized
    std: Tensor | None = None
    test_is_validation: bool = False
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def n_train(self) -> int:
        return len(self.x_train)

    @property
    def input_dim(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one example: ``(features,)``, ``(C, H, W)``, ..."""
        return tuple(int(n) for n in self.x_train.shape[1:])

    @property
    def output_dim(self) -> int:
        if self.task in ("classification", "language_model"):  # classes, or the vocabulary
            assert self.num_classes is not None
            return self.num_classes
        return int(self.y_train.shape[1])

    def describe(self) -> str:
        split = held_out_split(self.test_is_validation)
        kind = {
            "classification": f"classification, {self.num_classes} classes",
            "language_model": f"language model, {self.num_classes} tokens",
        }.get(self.task, f"regression, {self.output_dim} target(s)")
        scaled = "standardized" if self.mean is not None else "not standardized"
        return (
            f"{self.name}: {kind}; {self.input_dim} features; {len(self.x_train)} train / "
            f"{len(self.x_test)} {split} examples; {scaled}"
        )


def infer_task(y: np.ndarray) -> str:
    """Classification for integer-valued targets with few distinct values, else regression."""
    if y.ndim == 2 and y.shape[1] != 1:
        return "regression"
    flat = y.reshape(-1)
    if flat.dtype == bool:
        return "classification"
    if not np.issubdtype(flat.dtype, np.number):
        return "classification"  # strings and other labels can only be classes
    integral = np.all(np.isfinite(flat)) and np.all(flat == np.round(flat))
    return "classification" if integral and len(np.unique(flat)) <= MAX_CLASSES else "regression"


def split_indices(
    n: int, val_fraction: float, seed: int, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation index split; stratified (per-class proportions) given labels."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError(
            f"val_fraction must be in (0, 1) when the data has no test split; got {val_fraction}"
        )
    if n < 2:
        raise DataError(f"need at least 2 examples to split off a validation set; got {n}")
    rng = np.random.default_rng(seed)
    if labels is None:
        order = rng.permutation(n)
        n_val = min(max(int(round(n * val_fraction)), 1), n - 1)
        return np.sort(order[n_val:]), np.sort(order[:n_val])
    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        k = int(round(len(members) * val_fraction))
        val.append(members[:k])
        train.append(members[k:])
    train_idx, val_idx = np.concatenate(train), np.concatenate(val)
    # Rounding per class can leave one side empty on tiny data; move one example over.
    if len(val_idx) == 0:
        val_idx, train_idx = train_idx[:1], train_idx[1:]
    elif len(train_idx) == 0:
        train_idx, val_idx = val_idx[:1], val_idx[1:]
    return np.sort(train_idx), np.sort(val_idx)


def encode_labels(
    y: np.ndarray, y_test: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Labels (of any type) remapped to 0..K-1 over train and test together; also the classes."""
    flat = y.reshape(-1)
    both = flat if y_test is None else np.concatenate([flat, y_test.reshape(-1)])
    classes, codes = np.unique(both, return_inverse=True)
    codes = codes.astype(np.int64)
    test_codes = None if y_test is None else codes[len(flat) :]
    return codes[: len(flat)], test_codes, classes


def _check_arrays(name: str, x: np.ndarray, y: np.ndarray, split: str) -> np.ndarray:
    if x.ndim == 1:
        x = x[:, None]  # a single feature given as a vector
    # (examples, features) for the built-in models; a model factory may take any shape.
    if len(x) != len(y):
        raise DataError(
            f"{name}: {split} features have {len(x)} rows but targets have {len(y)}; "
            "they must match"
        )
    if len(x) == 0:
        raise DataError(f"{name}: the {split} split is empty")
    try:
        x = x.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise DataError(f"{name}: {split} features are not numeric ({err})") from None
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        raise DataError(f"{name}: {split} features contain {bad} NaN or infinite value(s)")
    return x


def _targets(name: str, y: np.ndarray, split: str) -> np.ndarray:
    if np.issubdtype(y.dtype, np.number):
        bad = int(np.count_nonzero(~np.isfinite(y.astype(np.float64))))
        if bad:
            raise DataError(f"{name}: {split} targets contain {bad} NaN or infinite value(s)")
    return y


def finalize(
    name: str,
    arrays: Arrays,
    *,
    seed: int,
    val_fraction: float,
    standardize: bool,
    holdout: str = "auto",
) -> Dataset:
    """Check, split (when the source has no test split), encode, standardize, convert.

    ``holdout = "validation"`` sets a shipped test split aside and holds out ``val_fraction``
    of the training data instead, for tuning without looking at the test split.
    """
    if holdout == "validation" and arrays.x_test is not None:
        arrays = replace(arrays, x_test=None, y_test=None)
    if arrays.task not in TASKS:
        raise DataError(f"task must be one of {', '.join(TASKS)}; got {arrays.task!r}")
    if (arrays.x_test is None) != (arrays.y_test is None):
        raise DataError(f"{name}: a test split needs both x_test and y_test")
    if arrays.task == "language_model":
        return _token_sequences(name, arrays, seed=seed, val_fraction=val_fraction)
    x = _check_arrays(name, np.asarray(arrays.x), np.asarray(arrays.y), "training")
    y = _targets(name, np.asarray(arrays.y), "training")
    has_test = arrays.x_test is not None
    if has_test:
        x_test = _check_arrays(name, np.asarray(arrays.x_test), np.asarray(arrays.y_test), "test")
        y_test = _targets(name, np.asarray(arrays.y_test), "test")
        if x_test.shape[1:] != x.shape[1:]:
            raise DataError(
                f"{name}: test examples are shaped {x_test.shape[1:]}, training {x.shape[1:]}"
            )
    classes = arrays.classes
    if arrays.task == "classification":
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise DataError(f"{name}: classification needs one label per example; got {y.shape}")
        if has_test:
            y_test = y_test.reshape(-1)
        if classes is not None:  # labels given as codes 0..K-1 of these classes
            for labels, split in ((y, "training"), (y_test if has_test else y, "test")):
                codes = np.asarray(labels)
                if codes.size and (
                    not np.all(codes == np.round(codes)) or codes.min() < 0
                    or codes.max() >= len(classes)
                ):  # fmt: skip
                    raise DataError(
                        f"{name}: {split} labels must be class numbers 0..{len(classes) - 1}; "
                        f"found {codes.min().item()}..{codes.max().item()}"
                    )
        if classes is None:  # remap whatever labels were given to 0..K-1, keep the originals
            y, y_test_codes, found = encode_labels(y, y_test if has_test else None)
            classes = found.tolist()
            if has_test:
                assert y_test_codes is not None  # (encode_labels codes the test labels given)
                y_test = y_test_codes
        num_classes: int | None = len(classes)
    else:
        try:
            y = y.astype(np.float64).reshape(len(y), -1)
            if has_test:
                y_test = y_test.astype(np.float64).reshape(len(y_test), -1)
        except (TypeError, ValueError) as err:
            raise DataError(f"{name}: regression targets must be numeric ({err})") from None
        num_classes = None
    if not has_test:
        strata = y if arrays.task == "classification" else None
        train_idx, val_idx = split_indices(len(x), val_fraction, seed, strata)
        x, x_test, y, y_test = x[train_idx], x[val_idx], y[train_idx], y[val_idx]
    mean = std = None
    if standardize:
        # Statistics of the training split only: the evaluation split must not leak into them.
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        std = np.where(std < CONSTANT_STD, 1.0, std)
        x, x_test = (x - mean) / std, (x_test - mean) / std
    import torch

    label_dtype = torch.int64 if arrays.task == "classification" else torch.float32
    # Contiguous rows whatever layout the source had: a transposed array (images read as
    # H x W x C and permuted) would reach the model as channels_last (see images.decode).
    x, x_test = np.ascontiguousarray(x), np.ascontiguousarray(x_test)
    return Dataset(
        name=name,
        x_train=torch.as_tensor(x, dtype=torch.float32),
        y_train=torch.as_tensor(y, dtype=label_dtype),
        x_test=torch.as_tensor(x_test, dtype=torch.float32),
        y_test=torch.as_tensor(y_test, dtype=label_dtype),
        task=arrays.task,
        num_classes=num_classes,
        classes=classes,
        mean=None if mean is None else torch.as_tensor(mean, dtype=torch.float32),
        std=None if std is None else torch.as_tensor(std, dtype=torch.float32),
        test_is_validation=not has_test or arrays.test_is_validation,
        extras=dict(arrays.extras),
    )


def _token_sequences(name: str, arrays: Arrays, *, seed: int, val_fraction: float) -> Dataset:
    """A language model's data: token ids ``(examples, time)``, each target the next ids
    (same shape); the vocabulary is ``arrays.classes`` or every id seen. Not standardized."""
    import torch

    def ids(values: np.ndarray, what: str) -> np.ndarray:
        values = np.asarray(values)
        if values.ndim != 2 or not np.issubdtype(values.dtype, np.integer):
            raise DataError(
                f"{name}: a language model's {what} must be integer token ids shaped "
                f"(examples, time); got {values.dtype} {values.shape}"
            )
        if values.size and values.min() < 0:
            raise DataError(f"{name}: {what} hold negative token ids")
        return values

    x, y = ids(arrays.x, "training inputs"), ids(arrays.y, "training targets")
    if arrays.x_test is None:
        train_idx, val_idx = split_indices(len(x), val_fraction, seed)
        x, x_test, y, y_test = x[train_idx], x[val_idx], y[train_idx], y[val_idx]
    else:
        assert arrays.y_test is not None  # (finalize checked that both or neither are given)
        x_test, y_test = ids(arrays.x_test, "test inputs"), ids(arrays.y_test, "test targets")
    for a, b, split in ((x, y, "training"), (x_test, y_test, "test")):
        if a.shape != b.shape:
            raise DataError(
                f"{name}: {split} inputs are shaped {a.shape} and targets {b.shape}; a language "
                "model's targets are the next tokens, of the same shape"
            )
    seen = 1 + max(int(a.max()) for a in (x, y, x_test, y_test))
    vocabulary = len(arrays.classes) if arrays.classes is not None else seen
    if seen > vocabulary:
        raise DataError(f"{name}: token id {seen - 1} is outside the {vocabulary}-token vocabulary")

    def as_ids(a: np.ndarray) -> Tensor:
        return torch.as_tensor(a, dtype=torch.int64)

    return Dataset(
        name=name,
        x_train=as_ids(x),
        y_train=as_ids(y),
        x_test=as_ids(x_test),
        y_test=as_ids(y_test),
        task="language_model",
        num_classes=vocabulary,
        classes=arrays.classes,
        test_is_validation=arrays.x_test is None or arrays.test_is_validation,
        extras=dict(arrays.extras),
    )
