"""Your own model and data, trained by nnopt: the factories `recipe.toml` names.

Any importable function works (``"package.module:function"``) or, as here, a file path
(``"examples/own_model/project.py:small_cnn"``, relative to the directory nnopt runs in).
"""

from __future__ import annotations

import numpy as np
from torch import nn


def small_cnn(input_shape: tuple[int, ...], output_dim: int, width: int = 16) -> nn.Module:
    """Two 3x3 convolutions, 2x2 max pooling and a linear head.

    nnopt passes ``input_shape`` (one example's, here (1, 8, 8)) and ``output_dim`` (the
    number of classes) because the signature asks for them; ``width`` comes from
    ``[model.args]``. ``init = "auto"`` then draws each layer for the ReLU after it (He).
    """
    channels, height, width_px = input_shape
    return nn.Sequential(
        nn.Conv2d(channels, width, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, width, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(width * (height // 2) * (width_px // 2), output_dim),
    )


def digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (shipped with it, no download) as N x 1 x 8 x 8 images.

    Returning (x, y) without a test split lets nnopt hold out ``data.val_fraction`` of it,
    seeded and stratified; return (x_train, y_train, x_test, y_test) to fix your own split.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = digits.images.astype(np.float32)[:, None, :, :] / 16.0
    return x, digits.target
