"""The user's data, from ``data.factory``: tensors, arrays or map-style Datasets in memory.

The factory returns ``(x_train, y_train, x_test, y_test)`` or ``(x_train, y_train)`` (then
``data.val_fraction`` of it is held out, seeded), or a dict with those keys (and optionally
``task``: "classification" or "regression"; otherwise inferred from the targets as for files).
Each part is a tensor, a NumPy array or nested lists; ``x`` may have any shape
``(examples, ...)`` (images ``N x C x H x W``, sequences), which a model factory receives as
``input_shape``. A training or test part may instead be a map-style
``torch.utils.data.Dataset`` of ``(x, y)`` pairs, read into memory once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from nnopt.data.dataset import TASKS, Arrays, infer_task
from nnopt.errors import RecipeError
from nnopt.recipe import factory as user_code

FIELD = "data.factory"
KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_user_data(spec: str, args: dict[str, Any], seed: int) -> Arrays:
    """Call the factory (with ``seed`` when it asks for it) and check what it returned."""
    made = user_code.call(user_code.resolve(spec, FIELD), spec, FIELD, args, {"seed": seed})
    return arrays_from(made, spec)


def arrays_from(made: Any, spec: str = "data") -> Arrays:
    """What a data factory returned (or what was passed as ``data=``), checked, as arrays."""
    task = None
    if isinstance(made, dict):
        unknown = sorted(set(made) - {*KEYS, "task"})
        if unknown or not {"x_train", "y_train"} <= made.keys():
            raise RecipeError(
                f"{FIELD}: {spec} returned a dict with keys {sorted(made)}; expected x_train, "
                "y_train and optionally x_test, y_test, task"
            )
        task = made.get("task")
        parts = [made.get(k) for k in KEYS]
    elif isinstance(made, tuple | list) and len(made) == 2 and all(map(_is_dataset, made)):
        parts = [made[0], None, made[1], None]  # (train Dataset, test Dataset)
    elif isinstance(made, tuple | list) and len(made) in (2, 4):
        parts = list(made) + [None] * (4 - len(made))
    elif _is_dataset(made):
        parts = [made, None, None, None]
    else:
        raise RecipeError(
            f"{FIELD}: {spec} returned {_describe(made)}; expected (x_train, y_train, x_test, "
            "y_test), (x_train, y_train) or a dict of those"
        )
    if _is_dataset(parts[0]) and parts[1] is None:
        parts[0], parts[1] = _read_dataset(parts[0], spec, "training")
    if len(parts) > 2 and _is_dataset(parts[2]) and parts[3] is None:
        parts[2], parts[3] = _read_dataset(parts[2], spec, "test")
    x, y, x_test, y_test = (None if part is None else _array(part, spec) for part in parts)
    if x is None or y is None:
        raise RecipeError(f"{FIELD}: {spec} returned no training data (x_train, y_train)")
    if task is None:
        task = infer_task(y)
    elif task not in TASKS:
        raise RecipeError(f"{FIELD}: {spec} returned task {task!r}; allowed: {', '.join(TASKS)}")
    return Arrays(x=x, y=y, task=task, x_test=x_test, y_test=y_test)


def _is_dataset(obj: Any) -> bool:
    return hasattr(obj, "__getitem__") and hasattr(obj, "__len__") and not _is_arraylike(obj)


def _is_arraylike(obj: Any) -> bool:
    return isinstance(obj, np.ndarray | list | tuple | torch.Tensor)


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
