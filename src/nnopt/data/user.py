"""The user's data, from ``data.factory`` (or ``nnopt.train(data=...)``): tensors, arrays or
map-style Datasets.

The factory returns ``(x_train, y_train, x_test, y_test)`` or ``(x_train, y_train)`` (then
``data.val_fraction`` of it is held out, seeded), or a dict with those keys (and optionally
``task``). Each part is a tensor, a NumPy array or nested lists; ``x`` may have any shape
``(examples, ...)`` (images ``N x C x H x W``, sequences), which a model factory receives as
``input_shape``.

Or it returns ``torch.utils.data.Dataset``s of ``(x, y)`` pairs: one (the held-out split is
carved from it), a pair ``(train, test)``, or a dict ``{"train": ..., "test": ..., "task":
..., "num_classes": ...}``. ``data.loader`` decides whether they are read into memory once
(``"memory"``; ``"auto"`` for those under ``streamed.MEMORY_LIMIT``) or streamed by a
DataLoader during training (``"stream"``: ``data.workers``, ``data.pin_memory``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from nnopt import usercode
from nnopt.data.dataset import TASKS, Arrays, infer_task
from nnopt.data.source import DataSource
from nnopt.data.streamed import MEMORY_LIMIT, StreamedData, estimated_bytes, streamed
from nnopt.errors import RecipeError

FIELD = "data.factory"
KEYS = ("x_train", "y_train", "x_test", "y_test")
DATASET_KEYS = ("train", "test")
META = ("task", "num_classes")


def load_user_data(
    spec: str, args: dict[str, Any], seed: int, data: DataSource | None = None
) -> Arrays | StreamedData:
    """Call the factory (with ``seed`` when it asks for it) and check what it returned."""
    made = usercode.call(usercode.resolve(spec, FIELD), spec, FIELD, args, {"seed": seed})
    return user_data(made, spec, seed=seed, data=data)


def user_data(
    made: Any, spec: str = "data", *, seed: int = 0, data: DataSource | None = None
) -> Arrays | StreamedData:
    """What a data factory returned (or what was passed as ``data=``), checked: arrays in
    memory, or Datasets to stream. ``data`` is the recipe's [data] (task, loader, workers)."""
    parts, meta = _parts(made, spec)
    task = _task(meta.get("task"), getattr(data, "task", "auto"), spec)
    train, test = parts[0], parts[2]
    if _is_dataset(train) and parts[1] is None and (test is None or _is_dataset(test)):
        loader = getattr(data, "loader", "auto")
        if loader == "stream" or (loader == "auto" and estimated_bytes(train) > MEMORY_LIMIT):
            if getattr(data, "holdout", "auto") == "validation":
                test = None  # carved from the training Dataset instead
            return streamed(
                spec.rpartition(":")[2], train, test, task=task,
                num_classes=meta.get("num_classes"), seed=seed,
                val_fraction=getattr(data, "val_fraction", 0.2),
                workers=getattr(data, "workers", 0), pin_memory=getattr(data, "pin_memory", False),
            )  # fmt: skip
    if _is_dataset(parts[0]) and parts[1] is None:
        parts[0], parts[1] = _read_dataset(parts[0], spec, "training")
    if _is_dataset(parts[2]) and parts[3] is None:
        parts[2], parts[3] = _read_dataset(parts[2], spec, "test")
    x, y, x_test, y_test = (None if part is None else _array(part, spec) for part in parts)
    if x is None or y is None:
        raise RecipeError(f"{FIELD}: {spec} returned no training data (x_train, y_train)")
    if task == "auto":
        task = infer_task(y)
    classes = None
    if meta.get("num_classes") is not None:
        classes = list(range(int(meta["num_classes"])))
    return Arrays(x=x, y=y, task=task, x_test=x_test, y_test=y_test, classes=classes)


def arrays_from(made: Any, spec: str = "data") -> Arrays:
    """What a data factory returned, read into memory as arrays."""
    arrays = user_data(made, spec)
    assert isinstance(arrays, Arrays)
    return arrays


def _parts(made: Any, spec: str) -> tuple[list[Any], dict[str, Any]]:
    """(x_train, y_train, x_test, y_test) (a Dataset in place of x, with y None) and the
    factory's task / num_classes."""
    if isinstance(made, dict):
        datasets = DATASET_KEYS[0] in made
        allowed = {*(DATASET_KEYS if datasets else KEYS), *META}
        needed = {"train"} if datasets else {"x_train", "y_train"}
        unknown = sorted(set(made) - allowed)
        if unknown or not needed <= made.keys():
            raise RecipeError(
                f"{FIELD}: {spec} returned a dict with keys {sorted(made)}; expected x_train, "
                "y_train and optionally x_test, y_test (or Datasets as train and optionally "
                "test), and optionally task, num_classes"
            )
        meta = {k: made[k] for k in META if made.get(k) is not None}
        if datasets:
            return [made["train"], None, made.get("test"), None], meta
        return [made.get(k) for k in KEYS], meta
    if isinstance(made, tuple | list) and len(made) == 2 and all(map(_is_dataset, made)):
        return [made[0], None, made[1], None], {}  # (train Dataset, test Dataset)
    if isinstance(made, tuple | list) and len(made) in (2, 4):
        return list(made) + [None] * (4 - len(made)), {}
    if _is_dataset(made):
        return [made, None, None, None], {}
    raise RecipeError(
        f"{FIELD}: {spec} returned {_describe(made)}; expected (x_train, y_train, x_test, "
        "y_test), (x_train, y_train), Datasets, or a dict of those"
    )


def _task(returned: Any, recipe_task: str, spec: str) -> str:
    if returned is None:
        return recipe_task
    if returned not in TASKS:
        raise RecipeError(
            f"{FIELD}: {spec} returned task {returned!r}; allowed: {', '.join(TASKS)}"
        )
    if recipe_task not in ("auto", returned):
        raise RecipeError(
            f"data.task: the recipe says {recipe_task!r} and {spec} returned task {returned!r}"
        )
    return str(returned)


def _is_dataset(obj: Any) -> bool:
    return hasattr(obj, "__getitem__") and hasattr(obj, "__len__") and not _is_arraylike(obj)


def _is_arraylike(obj: Any) -> bool:
    return isinstance(obj, np.ndarray | list | tuple | torch.Tensor | dict)


def _read_dataset(dataset: Any, spec: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A map-style Dataset of (x, y) pairs as two stacked arrays."""
    try:
        pairs = [dataset[i] for i in range(len(dataset))]
        xs = np.stack([_array(pair[0], spec) for pair in pairs])
        ys = np.stack([_array(pair[1], spec) for pair in pairs])
    except RecipeError:
        raise
    except Exception as exc:
        raise RecipeError(
            f"{FIELD}: the {split} Dataset of {spec} is not a sequence of (x, y) pairs "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    return xs, ys


def _array(part: Any, spec: str) -> np.ndarray:
    if isinstance(part, torch.Tensor):
        return part.detach().cpu().numpy()
    try:
        return np.asarray(part)
    except Exception as exc:
        raise RecipeError(f"{FIELD}: {spec} returned {_describe(part)}, not an array") from exc


def _describe(obj: Any) -> str:
    if isinstance(obj, tuple | list):
        return f"a {type(obj).__name__} of {len(obj)}"
    return f"a {type(obj).__name__}"
