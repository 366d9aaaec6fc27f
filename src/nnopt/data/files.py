"""User data files: ``.npz`` (arrays x, y[, x_test, y_test]), ``.npy`` (the features; the
labels, and a test split, in the ``.npy`` files its options name) and ``.csv`` (header row, a
target column, numeric feature columns). Read with numpy and the csv module only. Features
may have any shape ``(examples, ...)``: images ``N x C x H x W`` train a 2-D ``resnet``."""

from __future__ import annotations

import contextlib
import csv
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from nnopt.data.dataset import TASKS, Arrays, infer_task
from nnopt.errors import DataError, DataFileNotFound

SUFFIXES = (".npz", ".npy", ".csv")
_OPTIONS = {
    ".npz": ("task",),
    ".npy": ("labels", "test", "test_labels", "task"),
    ".csv": ("target", "task"),
}


def _check_file_options(path: Path, options: dict[str, Any]) -> str | None:
    allowed = _OPTIONS[path.suffix.lower()]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise DataError(
            f"unknown option(s) {', '.join(unknown)} for {path.suffix} file {path}; "
            f"allowed: {', '.join(allowed)}"
        )
    task = options.get("task")
    if task is not None and task not in TASKS:
        raise DataError(f"option task must be one of {', '.join(TASKS)}; got {task!r}")
    return task


def _task_and_labels(
    y: np.ndarray, y_test: np.ndarray | None, task: str | None
) -> tuple[str, np.ndarray, np.ndarray | None]:
    """The task (forced or inferred from all targets); integral float labels become integers."""
    both = y.reshape(len(y), -1)
    if y_test is not None:
        both = np.concatenate([both, y_test.reshape(len(y_test), -1)])
    task = task or infer_task(both)
    floating = np.issubdtype(both.dtype, np.floating)
    # NaN labels stay float so that the shared check reports them with a count.
    if task == "classification" and floating and np.all(both == np.round(both)):
        y = y.astype(np.int64)
        y_test = None if y_test is None else y_test.astype(np.int64)
    return task, y, y_test


def load_npz(path: Path, options: dict[str, Any]) -> Arrays:
    task = _check_file_options(path, options)
    with (
        _unreadable(path, "an .npz archive of arrays"),
        np.load(path, allow_pickle=False) as stored,
    ):
        found = sorted(stored.files)
        for required in ("x", "y"):
            if required not in stored.files:
                raise DataError(
                    f"{path}: no array named {required!r}; found {', '.join(found) or 'none'}. "
                    "An .npz needs arrays x and y (optionally x_test and y_test)"
                )
        x, y = stored["x"], stored["y"]
        x_test = stored["x_test"] if "x_test" in stored.files else None
        y_test = stored["y_test"] if "y_test" in stored.files else None
    if (x_test is None) != (y_test is None):
        raise DataError(f"{path}: has only one of x_test, y_test; give both or neither")
    task, y, y_test = _task_and_labels(y, y_test, task)
    return Arrays(x, y, task, x_test, y_test)


def load_npy(path: Path, options: dict[str, Any]) -> Arrays:
    """``data.name = "x.npy"`` with ``options.labels = "y.npy"`` (and optionally ``test`` and
    ``test_labels``): paths relative to the working directory, as ``data.name`` is."""
    task = _check_file_options(path, options)
    if "labels" not in options:
        raise DataError(f"{path}: an .npy file holds the features only; name the labels' .npy "
                        "file in data.options.labels")  # fmt: skip
    if ("test" in options) != ("test_labels" in options):
        raise DataError(f"{path}: give both data.options.test and data.options.test_labels")
    x, y = _npy(path), _npy(Path(options["labels"]))
    x_test = _npy(Path(options["test"])) if "test" in options else None
    y_test = _npy(Path(options["test_labels"])) if "test_labels" in options else None
    task, y, y_test = _task_and_labels(y, y_test, task)
    return Arrays(x, y, task, x_test, y_test)


def _npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataFileNotFound(f"data file not found: {path}")
    with _unreadable(path, "a NumPy .npy array"):
        array: np.ndarray = np.load(path, allow_pickle=False)
        return array


def _number(text: str) -> float:
    text = text.strip()
    return float("nan") if text == "" else float(text)


def load_csv(path: Path, options: dict[str, Any]) -> Arrays:
    task = _check_file_options(path, options)
    target = options.get("target")
    with _unreadable(path, "UTF-8 CSV text"), path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise DataError(f"{path}: the file is empty; a header row is expected")
    header = [name.strip() for name in rows[0]]
    if target is None or target not in header:
        what = "needs option target=COLUMN" if target is None else f"has no column {target!r}"
        raise DataError(f"{path} {what}; columns: {', '.join(header)}")
    body = [row for row in rows[1:] if any(cell.strip() for cell in row)]
    if not body:
        raise DataError(f"{path}: no data rows under the header")
    col = header.index(target)
    features = [i for i in range(len(header)) if i != col]
    x = np.empty((len(body), len(features)))
    labels: list[str] = []
    for r, row in enumerate(body, start=2):  # line numbers as an editor shows them
        if len(row) != len(header):
            raise DataError(f"{path}:{r}: {len(row)} values but the header has {len(header)}")
        labels.append(row[col].strip())
        for j, i in enumerate(features):
            try:
                x[r - 2, j] = _number(row[i])
            except ValueError:
                raise DataError(
                    f"{path}:{r}: column {header[i]!r} has non-numeric value {row[i]!r}"
                ) from None
    try:
        y: np.ndarray = np.array([_number(v) for v in labels])
    except ValueError:
        y = np.array(labels)  # text labels: classes
    task, y, _ = _task_and_labels(y, None, task)
    return Arrays(x, y, task)


@contextlib.contextmanager
def _unreadable(path: Path, expected: str) -> Iterator[None]:
    """A file that cannot be read as ``expected`` is the user's to fix: a DataError naming it."""
    try:
        yield
    except DataError:
        raise
    except (OSError, ValueError, EOFError, csv.Error, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot be read as {expected} ({exc})") from exc


def load_file(path: Path, options: dict[str, Any]) -> Arrays:
    if not path.exists():
        raise DataFileNotFound(f"data file not found: {path}")
    if path.is_dir():
        raise DataError(f"{path} is a directory: data.name must name a {path.suffix} file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return load_npz(path, options)
    if suffix == ".npy":
        return load_npy(path, options)
    return load_csv(path, options)
