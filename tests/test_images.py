"""Images from the user's files: an image folder (``root/CLASS/*.png``, or ``train/`` and
``test/`` of those) and ``.npy`` arrays shaped N x C x H x W, trained by the 2-D ResNet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nnopt.cli import main
from nnopt.data import load_dataset
from nnopt.data.images import ImageFolder
from nnopt.errors import DataError
from nnopt.recipe import Recipe
from nnopt.training import train


def stripes(kind: str, rng: np.random.Generator, size: int = 8) -> np.ndarray:
    """Horizontal or vertical stripes with noise, as uint8 RGB."""
    line = (np.arange(size) % 2 * 200).astype(float)
    base = np.tile(line[:, None], (1, size)) if kind == "horizontal" else np.tile(line, (size, 1))
    noisy = base[..., None] + rng.normal(0, 25, (size, size, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def make_folder(root: Path, per_class: int = 20, split: bool = False, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for part in ("train", "test") if split else ("",):
        for kind in ("vertical", "horizontal"):
            folder = root / part / kind
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(stripes(kind, rng)).save(folder / f"{i}.png")
    return root


def resnet_recipe(data: str, batch_size: int, eval_every: int) -> str:
    """60 Adam steps of a small 2-D ResNet on the [data] given."""
    return f"""
name = "images"
[data]
{data}
[model]
kind = "resnet"
channels = 4
layers = 2
[optimizer]
name = "adam"
lr = 0.01
[train]
steps = 60
batch_size = {batch_size}
eval_every = {eval_every}
"""


def test_an_image_folder_reads_as_classes_of_images(tmp_path):
    root = make_folder(tmp_path / "imgs", per_class=10)
    data = load_dataset(str(root), standardize=False)
    assert data.classes == ["horizontal", "vertical"]  # sorted folder names, as torchvision
    assert data.input_shape == (3, 8, 8) and data.test_is_validation
    assert len(data.x_train) + len(data.x_test) == 20
    assert float(data.x_train.min()) >= 0.0 and float(data.x_train.max()) <= 1.0
    first = ImageFolder(root)[0][0]  # the Dataset form gives the same pixels
    pixels = np.asarray(Image.open(root / "horizontal" / "0.png"), np.float32) / 255
    assert np.allclose(first, pixels.transpose(2, 0, 1))
    gray = load_dataset(str(root), standardize=False, grayscale=True, size=4)
    assert gray.input_shape == (1, 4, 4)


def test_a_folder_with_train_and_test_trains_the_2d_resnet(tmp_path, capsys):
    root = make_folder(tmp_path / "imgs", per_class=24, split=True)
    recipe = Recipe.loads(resnet_recipe(f'name = "{root}"', batch_size=16, eval_every=20))
    result = train(recipe)
    assert result.summary["held_out"] == "test"
    assert result.history[-1]["val_accuracy"] >= 0.9  # stripes are easy for a convolution


def test_image_folder_mistakes_are_one_line(tmp_path):
    root = make_folder(tmp_path / "imgs", per_class=2)
    Image.fromarray(np.zeros((5, 6, 3), np.uint8)).save(root / "vertical" / "odd.png")
    with pytest.raises(DataError, match="the image is 6x5 and the first one 8x8; set data.opt"):
        load_dataset(str(root))
    assert load_dataset(str(root), size=8).input_shape == (3, 8, 8)  # resized
    (root / "vertical" / "bad.png").write_text("not an image")
    with pytest.raises(DataError, match="bad.png: cannot be read as an image"):
        load_dataset(str(root), size=8)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no class folders"):
        load_dataset(str(empty))
    with pytest.raises(DataError, match="unknown option.*colour.*allowed: size, grayscale"):
        load_dataset(str(root), colour=True)


def test_npy_images_with_their_labels_file(tmp_path, monkeypatch, capsys):
    from sklearn.datasets import load_digits

    digits = load_digits()
    monkeypatch.chdir(tmp_path)
    np.save("x.npy", digits.images[:, None].astype(np.float32))  # N x 1 x 8 x 8
    np.save("y.npy", digits.target)
    data = load_dataset("x.npy", labels="y.npy")
    assert data.input_shape == (1, 8, 8) and data.num_classes == 10
    assert len(data.x_train) + len(data.x_test) == 1797
    with pytest.raises(DataError, match="name the labels' .npy file in data.options.labels"):
        load_dataset("x.npy")
    with pytest.raises(DataError, match="data file not found: nope.npy"):
        load_dataset("x.npy", labels="nope.npy")
    data = 'name = "x.npy"\n[data.options]\nlabels = "y.npy"'
    Path("r.toml").write_text(resnet_recipe(data, batch_size=64, eval_every=30))
    assert main(["train", "r.toml", "--out", "run", "--quiet"]) == 0
    assert "validation accuracy" in capsys.readouterr().out


def test_a_large_folder_streams_as_an_image_folder_dataset(tmp_path):
    import nnopt

    root = make_folder(tmp_path / "imgs", per_class=16)
    recipe = {
        "data": {"loader": "stream", "workers": 1},
        "model": {"kind": "resnet", "channels": 4, "layers": 2},
        "optimizer": {"name": "adam", "lr": 0.01},
        "train": {"steps": 30, "batch_size": 8, "eval_every": 10},
    }
    streamed = nnopt.train(recipe, data=ImageFolder(root))
    assert streamed.summary["held_out"] == "validation"
    assert streamed.history[-1]["val_accuracy"] >= 0.8
