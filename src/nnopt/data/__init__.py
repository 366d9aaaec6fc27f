"""Data held in memory as tensors: embedded and synthetic sets, user files, and the batcher."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nnopt.data import text as text_data
from nnopt.data.dataset import Dataset, finalize
from nnopt.data.embedded import REGISTRY, load_embedded
from nnopt.data.files import SUFFIXES, load_file
from nnopt.errors import DataError

__all__ = ["Dataset", "available_datasets", "load_dataset"]


def available_datasets() -> list[tuple[str, str, str]]:
    """(name, description, size) of every embedded and synthetic set; builds none of them."""
    listed = [(e.name, e.description, e.size) for e in REGISTRY.values()]
    return listed + [(text_data.NAME, text_data.DESCRIPTION, text_data.SIZE)]


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
    text = str(name_or_path)
    if text == text_data.NAME:  # token windows: not features, so no finalize (split is its own)
        if task not in (None, "language_model"):
            raise DataError(f"data.task: {text} is a language model's data, not {task}")
        return text_data.char_lm_dataset(val_fraction=val_fraction, **options)
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
    return finalize(
        name, arrays, seed=seed, val_fraction=val_fraction, standardize=standardize,
        holdout=holdout,
    )  # fmt: skip
