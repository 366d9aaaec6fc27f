"""Data sets that need no download: shipped with a package (digits, MNIST-1D) or drawn (synthetic).

Each entry knows its options and their defaults so that a recipe typo is an error listing what
is allowed, and so that `nnopt datasets` can describe every set without building any of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnopt import atomic
from nnopt.cache import cache_dir
from nnopt.data.dataset import Arrays, split_indices
from nnopt.errors import DataError

MNIST1D_SIZES = "4000 train + 1000 test, 40 features, 10 classes"


@dataclass(frozen=True)
class Embedded:
    name: str
    description: str
    size: str
    defaults: dict[str, Any]
    load: Callable[..., Arrays]  # load(seed, **options) -> Arrays


def _check_options(entry: Embedded, options: dict[str, Any]) -> dict[str, Any]:
    """Options merged over the defaults, each coerced to its default's type."""
    unknown = sorted(set(options) - set(entry.defaults))
    if unknown:
        allowed = ", ".join(f"{k}={v!r}" for k, v in entry.defaults.items()) or "none"
        raise DataError(
            f"unknown option(s) {', '.join(unknown)} for data set {entry.name!r}; "
            f"its options are: {allowed}"
        )
    merged = dict(entry.defaults)
    for key, value in options.items():
        default = merged[key]
        if isinstance(default, bool):  # a switch takes only true or false
            if not isinstance(value, bool):
                raise DataError(
                    f"option {key} of {entry.name!r} must be true or false; got {value!r}"
                )
            merged[key] = value
            continue
        # bool is an int subclass; `n = true` in a recipe is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DataError(f"option {key} of {entry.name!r} must be a number; got {value!r}")
        if isinstance(default, int) and value != int(value):
            raise DataError(f"option {key} of {entry.name!r} must be an integer; got {value!r}")
        merged[key] = type(default)(value)
    return merged


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise DataError(message)


# --- shipped data ----------------------------------------------------------------------------


def _digits(seed: int, images: bool) -> Arrays:
    from sklearn.datasets import load_digits  # shipped inside scikit-learn: no download

    bunch = load_digits()
    x, y = bunch.data, bunch.target.astype(np.int64)
    if images:  # N x 1 x 8 x 8, for convolutional models (model.kind = "resnet")
        x = x.reshape(len(x), 1, 8, 8)
    # Digits has no official test split: hold out a stratified 20%, fixed whatever val_fraction.
    # A split carved from the training data: the reports call it validation.
    train, test = split_indices(len(x), 0.2, seed, y)
    return Arrays(
        x[train], y[train], "classification", x[test], y[test], classes=list(range(10)),
        test_is_validation=True,
    )  # fmt: skip


_MNIST1D_MEMORY: dict[str, dict[str, np.ndarray]] = {}


def _mnist1d_arrays() -> dict[str, np.ndarray]:
    """MNIST-1D with the package's default arguments, cached in memory and on disk.

    Generating takes seconds, so the arrays are kept under the cache directory keyed by the
    generation arguments; an unreadable or unwritable cache only costs the regeneration.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    spec = {k: v for k, v in vars(args).items() if k != "url"}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    if key in _MNIST1D_MEMORY:
        return _MNIST1D_MEMORY[key]
    path = cache_dir() / f"mnist1d-{key}.npz"
    names = ("x", "y", "x_test", "y_test")
    try:
        with np.load(path) as stored:
            arrays = {name: stored[name] for name in names}
    except (OSError, KeyError, ValueError):
        # make_dataset reseeds the global `random` and numpy generators; restore them so that
        # loading MNIST-1D does not change other randomness depending on whether it was cached.
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            made = make_dataset(args)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
        arrays = {name: np.asarray(made[name]) for name in names}
        _store(path, arrays)
    _MNIST1D_MEMORY[key] = arrays
    return arrays


def _store(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Keep the arrays on disk (atomically); a read-only home or a full disk is no error."""
    buffer = io.BytesIO()
    np.savez(buffer, **dict[str, Any](arrays))  # (numpy's stub types the kwargs as allow_pickle)
    # On failure the in-memory copy still serves this process; the next one generates again.
    with contextlib.suppress(OSError):
        atomic.write_bytes(path, buffer.getvalue())


def _mnist1d(seed: int) -> Arrays:
    del seed  # MNIST-1D is one fixed data set with its own train/test split
    a = _mnist1d_arrays()
    return Arrays(
        a["x"], a["y"], "classification", a["x_test"], a["y_test"], classes=list(range(10))
    )


# --- synthetic -------------------------------------------------------------------------------


def _rotation(rng: np.random.Generator, dim: int) -> np.ndarray:
    """A uniformly random orthogonal matrix (QR of a Gaussian with the sign fix)."""
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def _quadratic(seed: int, n: int, dim: int, condition: float, noise: float) -> Arrays:
    _require(n >= 2 and dim >= 1, f"quadratic needs n >= 2 and dim >= 1; got n={n}, dim={dim}")
    _require(condition >= 1.0, f"quadratic: condition must be >= 1; got {condition}")
    _require(noise >= 0.0, f"quadratic: noise must be >= 0; got {noise}")
    rng = np.random.default_rng(seed)
    eigenvalues = np.logspace(0.0, np.log10(condition), dim)
    # The rotation spreads every eigen-direction over all features, so per-feature
    # standardization (diagonal rescaling) barely changes the conditioning it is meant to show.
    rotation = _rotation(rng, dim)
    x = (rng.standard_normal((n, dim)) * np.sqrt(eigenvalues)) @ rotation.T
    w_star = rng.standard_normal(dim)
    y = x @ w_star + noise * rng.standard_normal(n)
    extras = {"w_star": w_star, "eigenvalues": eigenvalues, "condition": condition}
    return Arrays(x, y[:, None], "regression", extras=extras)


def _spirals(seed: int, n: int, classes: int, noise: float) -> Arrays:
    _require(classes >= 2, f"spirals needs classes >= 2; got {classes}")
    _require(n >= 2 * classes, f"spirals needs n >= 2 * classes = {2 * classes}; got {n}")
    _require(noise >= 0.0, f"spirals: noise must be >= 0; got {noise}")
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for k in range(classes):
        m = n // classes + (k < n % classes)
        t = rng.uniform(0.0, 1.0, m)
        # Arms of 4 radians offset by 2*pi/classes interleave; noise jitters the angle.
        angle = 2.0 * np.pi * k / classes + 4.0 * t + noise * rng.standard_normal(m)
        xs.append(np.stack([t * np.sin(angle), t * np.cos(angle)], axis=1))
        ys.append(np.full(m, k, dtype=np.int64))
    return Arrays(
        np.concatenate(xs), np.concatenate(ys), "classification", classes=list(range(classes))
    )


def _regression(seed: int, n: int, dim: int, noise: float) -> Arrays:
    _require(n >= 2 and dim >= 1, f"regression needs n >= 2 and dim >= 1; got n={n}, dim={dim}")
    _require(noise >= 0.0, f"regression: noise must be >= 0; got {noise}")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim))
    w_star, b_star = rng.standard_normal(dim), float(rng.standard_normal())
    y = x @ w_star + b_star + noise * rng.standard_normal(n)
    return Arrays(x, y[:, None], "regression", extras={"w_star": w_star, "b_star": b_star})


REGISTRY: dict[str, Embedded] = {
    e.name: e
    for e in (
        Embedded(
            "digits",
            "8x8 handwritten digits (scikit-learn), stratified 80/20 split",
            "1797 x 64, 10 classes (options images=true: 1797 x 1 x 8 x 8)",
            {"images": False},
            _digits,
        ),
        Embedded(
            "mnist1d",
            "MNIST-1D (Greydanus 2020), default arguments, generated once and cached",
            MNIST1D_SIZES,
            {},
            _mnist1d,
        ),
        Embedded(
            "quadratic",
            "linear regression whose squared loss has a chosen condition number",
            "n=2000 x dim=20 (options n, dim, condition=100, noise)",
            {"n": 2000, "dim": 20, "condition": 100.0, "noise": 0.1},
            _quadratic,
        ),
        Embedded(
            "spirals",
            "2-D interleaved spirals, one class per arm",
            "n=1500 x 2, 3 classes (options n, classes, noise)",
            {"n": 1500, "classes": 3, "noise": 0.2},
            _spirals,
        ),
        Embedded(
            "regression",
            "y = x w* + b* + noise; w*, b* kept in dataset.extras",
            "n=1000 x dim=10 (options n, dim, noise)",
            {"n": 1000, "dim": 10, "noise": 0.1},
            _regression,
        ),
    )
}


def load_embedded(name: str, seed: int, options: dict[str, Any]) -> Arrays:
    entry = REGISTRY[name]
    return entry.load(seed, **_check_options(entry, options))
