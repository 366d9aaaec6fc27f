"""Data held in memory as tensors: embedded and synthetic sets, user files, and the batcher.

:func:`load` is the one entry of a run's data: a built-in set or file, the user's
``data.factory``, or an object passed from Python all come out split, checked and
standardized by the same :func:`~nnopt.data.dataset.finalize`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnopt import usercode
from nnopt.data import text as text_data
from nnopt.data.dataset import Arrays, Dataset, finalize
from nnopt.data.embedded import REGISTRY, load_embedded
from nnopt.data.files import SUFFIXES, load_file
from nnopt.data.source import DataSource
from nnopt.errors import DataError, RecipeError

if TYPE_CHECKING:  # (streamed.py imports torch: `nnopt datasets` needs none)
    from nnopt.data.streamed import StreamedData

__all__ = ["Dataset", "DataSource", "available_datasets", "load", "load_dataset"]


def available_datasets() -> list[tuple[str, str, str]]:
    """(name, description, size) of every embedded and synthetic set; builds none of them."""
    listed = [(e.name, e.description, e.size) for e in REGISTRY.values()]
    return listed + [(text_data.NAME, text_data.DESCRIPTION, text_data.SIZE)]


def load(source: DataSource, seed: int, passed: object = None) -> Dataset | StreamedData:
    """A run's data: the object ``passed`` from Python (tensors, arrays or Datasets, as a
    factory returns them), else ``source.factory``'s return, else the built-in set or file
    ``source.name``; split, checked and standardized as ``source`` says (streamed Datasets
    are read during training, as they are)."""
    from nnopt.data.user import load_user_data, user_data  # (torch: not for `nnopt datasets`)

    if passed is not None:
        return _finalized("data", user_data(passed, seed=seed, data=source), source, seed)
    if source.factory == usercode.PASSED:
        raise RecipeError(
            "data: this run's data was passed from Python (nnopt.train(..., data=...)); pass "
            "it again to resume"
        )
    if source.factory is not None:
        made = load_user_data(source.factory, source.args, seed, source)
        return _finalized(source.factory.rpartition(":")[2], made, source, seed)
    assert source.name is not None  # (the recipe's DataSpec holds a name or a factory)
    task = None if source.task == "auto" else source.task
    name, read = _read(source.name, seed, task, source.val_fraction, source.options)
    return _finalized(name, read, source, seed)


def load_dataset(
    name_or_path: str | Path,
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    standardize: bool = True,
    task: str | None = None,
    holdout: str = "auto",
    **options: Any,
) -> Dataset:
    """An embedded/synthetic set by name, or a ``.npz``/``.csv`` file by path.

    Without a test split in the source, ``val_fraction`` of the data (seeded, stratified for
    classification) becomes ``x_test``/``y_test``. ``standardize`` scales each feature with the
    training split's mean and std. ``options`` go to the set (see ``nnopt datasets``) or file
    reader (``target=`` for CSV). ``task`` forces classification, regression or a language
    model's token sequences (the recipe's ``data.task``); None reads it from the data.
    """
    name, read = _read(str(name_or_path), seed, task, val_fraction, options)
    if isinstance(read, Dataset):
        return read
    return finalize(
        name, read, seed=seed, val_fraction=val_fraction, standardize=standardize,
        holdout=holdout,
    )  # fmt: skip


def _finalized(
    name: str, made: Arrays | Dataset | StreamedData, source: DataSource, seed: int
) -> Dataset | StreamedData:
    """Arrays split and standardized as ``source`` says; a Dataset (token windows, which
    split themselves) or streamed data as they are."""
    if not isinstance(made, Arrays):
        return made
    return finalize(
        name, made, seed=seed, val_fraction=source.val_fraction,
        standardize=source.standardize, holdout=source.holdout,
    )  # fmt: skip


def _read(
    text: str, seed: int, task: str | None, val_fraction: float, options: dict[str, Any]
) -> tuple[str, Arrays | Dataset]:
    """The named set's or file's arrays and its name (``charlm``: its token windows, already a
    Dataset, whose split is its own)."""
    if text == text_data.NAME:  # token windows: not features, so no finalize
        if task not in (None, "language_model"):
            raise DataError(f"data.task: {text} is a language model's data, not {task}")
        return text, text_data.char_lm_dataset(val_fraction=val_fraction, **options)
    if text in REGISTRY:
        arrays, name = load_embedded(text, seed, options), text
    elif Path(text).suffix.lower() in SUFFIXES:
        if task is not None and options.get("task", task) != task:
            raise DataError(
                f"data.task is {task!r} and data.options.task {options['task']!r}; give one"
            )
        arrays, name = load_file(Path(text), options), Path(text).stem
    elif Path(text).is_dir():
        from nnopt.data.images import load_image_folder

        arrays, name = load_image_folder(Path(text), options), Path(text).name
    else:
        raise DataError(
            f"unknown data set {text!r}; available: {', '.join([*REGISTRY, text_data.NAME])}; "
            f"or give a path to a {' or '.join(SUFFIXES)} file or an image folder"
        )
    if task is not None:  # the recipe's data.task: say, integer targets as a regression
        arrays.task = task
    return name, arrays
