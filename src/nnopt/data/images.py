"""Image folders (``data.name = "path/to/dir"``), torchvision's ``ImageFolder`` layout:

    root/CLASS_A/xxx.png, root/CLASS_A/yyy.jpg, root/CLASS_B/zzz.png, ...

or with a test split of its own, ``root/train/CLASS/...`` and ``root/test/CLASS/...``. The
classes are the sub-directory names, sorted (as torchvision numbers them). Images are decoded
with Pillow (a dependency of matplotlib), as RGB (3 channels) or, with ``options.grayscale``,
one channel, scaled to [0, 1] and shaped ``N x C x H x W``; ``options.size = S`` resizes each
to S x S, otherwise every image must have the first one's size.

:class:`ImageFolder` is the same as a Dataset read image by image, for folders too large to
hold in memory: return it from a ``data.factory`` with ``data.loader = "stream"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nnopt.data.dataset import Arrays
from nnopt.errors import DataError, DataFileNotFound

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
OPTIONS = ("size", "grayscale")
# A folder whose decoded images would pass this is refused in memory (stream it instead).
MEMORY_LIMIT = 2 * 2**30


class ImageFolder:
    """A map-style Dataset of ``(image C x H x W float32 in [0, 1], class number)``."""

    def __init__(self, root: str | Path, size: int | None = None, grayscale: bool = False,
                 classes: list[str] | None = None):  # fmt: skip
        self.root = Path(root)
        self.classes = classes or class_names(self.root)
        self.samples = [
            (path, label)
            for label, name in enumerate(self.classes)
            for path in sorted((self.root / name).rglob("*"))
            if path.suffix.lower() in EXTENSIONS
        ]
        if not self.samples:
            raise DataError(
                f"{self.root}: no images ({', '.join(EXTENSIONS)}) in its class folders"
            )
        self.targets = [label for _, label in self.samples]
        self.grayscale, self.resize = grayscale, size is not None
        self.size = (size, size) if size else _size_of(self.samples[0][0])

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        path, label = self.samples[i]
        return decode(path, self.size, self.grayscale, self.resize), label


def class_names(root: Path) -> list[str]:
    names = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not names:
        raise DataError(
            f"{root}: no class folders; an image folder holds one sub-directory of images per "
            "class (root/CLASS/image.png), or train/ and test/ folders of those"
        )
    return names


def decode(path: Path, size: tuple[int, int], grayscale: bool, resize: bool) -> np.ndarray:
    """One image as C x H x W float32 in [0, 1] of ``size`` (W, H): resized to it, or (with
    ``resize`` false) refused unless it has it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            image = opened.convert("L" if grayscale else "RGB")
            if image.size != size and not resize:
                raise DataError(
                    f"{path}: the image is {image.size[0]}x{image.size[1]} and the first one "
                    f"{size[0]}x{size[1]}; set data.options.size = S to resize all to S x S"
                )
            if image.size != size:
                image = image.resize(size, Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"{path}: cannot be read as an image ({exc})") from None
    # Contiguous C x H x W: a transposed view would reach torch as channels_last, whose
    # strided 1x1 convolution backward corrupts the heap in torch 2.13's CPU oneDNN path.
    return pixels[None] if grayscale else np.ascontiguousarray(pixels.transpose(2, 0, 1))


def _size_of(path: Path) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"{path}: cannot be read as an image ({exc})") from None


def load_image_folder(root: Path, options: dict[str, Any]) -> Arrays:
    """The whole folder in memory (its train/ and test/ splits when it has them)."""
    if not root.is_dir():
        raise DataFileNotFound(f"image folder not found: {root}")
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise DataError(
            f"unknown option(s) {', '.join(unknown)} for the image folder {root}; "
            f"allowed: {', '.join(OPTIONS)}"
        )
    size, grayscale = options.get("size"), bool(options.get("grayscale", False))
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise DataError(f"data.options.size must be a whole number of pixels >= 1, got {size!r}")
    split = (root / "train").is_dir() and (root / "test").is_dir()
    train = ImageFolder(root / "train" if split else root, size, grayscale)
    test = ImageFolder(root / "test", size, grayscale, train.classes) if split else None
    if test is not None:
        test.size = train.size  # (without options.size, checked image by image)
    x, y = _read(train)
    x_test, y_test = _read(test) if test is not None else (None, None)
    return Arrays(x, y, "classification", x_test, y_test, classes=train.classes)


def _read(folder: ImageFolder) -> tuple[np.ndarray, np.ndarray]:
    channels = 1 if folder.grayscale else 3
    width, height = folder.size
    needed = len(folder) * channels * width * height * 4
    if needed > MEMORY_LIMIT:
        raise DataError(
            f"{folder.root}: {len(folder)} images of {channels}x{height}x{width} take "
            f"{needed / 2**30:.1f} GiB decoded; give a smaller data.options.size, or stream "
            "them: a data.factory returning nnopt.data.images.ImageFolder(root) with "
            'data.loader = "stream"'
        )
    x = np.empty((len(folder), channels, height, width), dtype=np.float32)
    for i, (path, _) in enumerate(folder.samples):
        x[i] = decode(path, folder.size, folder.grayscale, folder.resize)
    return x, np.asarray(folder.targets, dtype=np.int64)
