"""Data sets: embedded and synthetic sets, user files, splitting, standardization, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nnopt.data import Dataset, available_datasets, embedded, load_dataset


def _assert_well_formed(d: Dataset) -> None:
    assert d.x_train.dtype == d.x_test.dtype == torch.float32
    assert d.x_train.ndim == 2 and d.x_train.shape[1] == d.input_dim
    if d.task == "classification":
        assert d.y_train.dtype == torch.int64 and d.y_train.ndim == 1
        assert int(d.y_train.max()) < d.num_classes == d.output_dim
    else:
        assert d.y_train.dtype == torch.float32 and d.y_train.ndim == 2
        assert d.num_classes is None and d.output_dim == d.y_train.shape[1]
    assert len(d.x_train) == len(d.y_train) and len(d.x_test) == len(d.y_test)
    assert d.name in d.describe()


# --- embedded and synthetic ---------------------------------------------------------------------


def test_available_datasets_lists_all_without_building_them(monkeypatch):
    monkeypatch.setattr(embedded, "_mnist1d_arrays", lambda: pytest.fail("generated mnist1d"))
    rows = available_datasets()
    names = [row[0] for row in rows]
    assert names == ["digits", "mnist1d", "quadratic", "spirals", "regression", "charlm"]
    assert all(len(row) == 3 and all(isinstance(v, str) and v for v in row) for row in rows)
    assert "4000" in dict((r[0], r[2]) for r in rows)["mnist1d"]


def test_digits_stratified_split():
    d = load_dataset("digits", seed=3)
    _assert_well_formed(d)
    assert (len(d.x_train), len(d.x_test), d.input_dim, d.num_classes) == (1438, 359, 64, 10)
    assert d.test_is_validation  # carved by nnopt from the training data: "validation"
    share = torch.bincount(d.y_test, minlength=10) / torch.bincount(d.y_train, minlength=10)
    assert torch.allclose(share, torch.full((10,), 0.25), atol=0.03)
    again = load_dataset("digits", seed=3)
    assert torch.equal(d.x_train, again.x_train)
    assert not torch.equal(d.y_train, load_dataset("digits", seed=4).y_train)


def test_mnist1d_shapes_and_determinism():
    d = load_dataset("mnist1d", seed=5)
    _assert_well_formed(d)
    assert (len(d.x_train), len(d.x_test), d.input_dim, d.output_dim) == (4000, 1000, 40, 10)
    # One fixed data set: the seed does not change it.
    assert torch.equal(d.y_train, load_dataset("mnist1d", seed=0).y_train)


def _fake_mnist1d(args):
    rng = np.random.default_rng(0)
    return {
        "x": rng.normal(size=(8, 40)),
        "y": np.arange(8) % 10,
        "x_test": rng.normal(size=(2, 40)),
        "y_test": np.arange(2),
    }


def test_mnist1d_disk_cache(monkeypatch, tmp_path):
    import mnist1d.data

    monkeypatch.setattr(embedded, "_MNIST1D_MEMORY", {})
    monkeypatch.setenv("NNOPT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(mnist1d.data, "make_dataset", _fake_mnist1d)
    first = embedded._mnist1d_arrays()
    assert [p.suffix for p in tmp_path.iterdir()] == [".npz"]  # no temporary file left behind
    embedded._MNIST1D_MEMORY.clear()
    monkeypatch.setattr(mnist1d.data, "make_dataset", lambda a: pytest.fail("regenerated"))
    second = embedded._mnist1d_arrays()
    assert all(np.array_equal(first[k], second[k]) for k in first)


def test_one_cache_dir_for_data_and_kernels(monkeypatch, tmp_path):
    import mnist1d.data

    from nnopt.cache import cache_dir
    from nnopt.optim.kernels import build

    monkeypatch.delenv("NNOPT_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_dir() == tmp_path / "home" / ".cache" / "nnopt"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # the XDG spec: ignore a relative one
    assert cache_dir() == tmp_path / "home" / ".cache" / "nnopt"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "nnopt"
    # The built kernels and the generated data sets both land there.
    assert build.library_path("c++", []).parent == tmp_path / "xdg" / "nnopt"
    monkeypatch.setattr(embedded, "_MNIST1D_MEMORY", {})
    monkeypatch.setattr(mnist1d.data, "make_dataset", _fake_mnist1d)
    embedded._mnist1d_arrays()
    assert [p.suffix for p in (tmp_path / "xdg" / "nnopt").iterdir()] == [".npz"]
    monkeypatch.setenv("NNOPT_CACHE_DIR", str(tmp_path / "explicit"))
    assert cache_dir() == build.library_path("c++", []).parent == tmp_path / "explicit"


def test_mnist1d_unwritable_cache_is_tolerated(monkeypatch, tmp_path):
    import mnist1d.data

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setattr(embedded, "_MNIST1D_MEMORY", {})
    monkeypatch.setenv("NNOPT_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setattr(mnist1d.data, "make_dataset", _fake_mnist1d)
    assert embedded._mnist1d_arrays()["x"].shape == (8, 40)


def test_quadratic_condition_number():
    d = load_dataset("quadratic", standardize=False, n=4000, dim=8, condition=50.0, noise=0.0)
    _assert_well_formed(d)
    x = d.x_train.double()
    eig = torch.linalg.eigvalsh(x.T @ x / len(x))
    assert 35 < float(eig.max() / eig.min()) < 70  # sample covariance of the chosen spectrum
    w = torch.as_tensor(d.extras["w_star"])
    assert torch.allclose(x @ w, d.y_train.double()[:, 0], atol=1e-4)
    assert d.test_is_validation and len(d.x_test) == 800


def test_regression_extras_and_fit():
    d = load_dataset("regression", standardize=False, n=500, dim=4, noise=0.0, seed=2)
    _assert_well_formed(d)
    w, b = torch.as_tensor(d.extras["w_star"]), d.extras["b_star"]
    assert torch.allclose(d.x_train.double() @ w + b, d.y_train.double()[:, 0], atol=1e-4)


def test_spirals_classes_and_seeds():
    d = load_dataset("spirals", n=300, classes=4)
    _assert_well_formed(d)
    assert d.input_dim == 2 and d.num_classes == 4
    assert torch.bincount(d.y_test).tolist() == [15, 15, 15, 15]  # stratified validation
    same = load_dataset("spirals", n=300, classes=4)
    other = load_dataset("spirals", n=300, classes=4, seed=1)
    assert torch.equal(d.x_train, same.x_train) and not torch.equal(d.x_train, other.x_train)


def test_standardization_uses_training_split_only():
    d = load_dataset("regression", seed=1)
    assert torch.allclose(d.x_train.mean(0), torch.zeros(d.input_dim), atol=1e-5)
    assert torch.allclose(d.x_train.std(0, unbiased=False), torch.ones(d.input_dim), atol=1e-4)
    raw = load_dataset("regression", seed=1, standardize=False)
    assert raw.mean is None and raw.std is None
    assert torch.allclose((raw.x_test - d.mean) / d.std, d.x_test, atol=1e-5)


def test_standardization_matches_scikit_learn_including_constant_features():
    from sklearn.preprocessing import StandardScaler

    # Seed 3's split leaves pixel 56 blank in every training image, not in every test image.
    raw = load_dataset("digits", standardize=False, seed=3)
    d = load_dataset("digits", seed=3)
    constant = (raw.x_train.std(0) == 0).nonzero().flatten()
    # A std floor (1e-8) would turn that test value of 1 into 1e8.
    assert len(constant) > 0 and raw.x_test[:, constant].abs().sum() > 0
    scaler = StandardScaler().fit(raw.x_train.double().numpy())
    expected = torch.from_numpy(scaler.transform(raw.x_test.double().numpy())).float()
    assert torch.allclose(d.x_test, expected, atol=1e-5)
    assert torch.equal(d.x_test[:, constant], raw.x_test[:, constant] - d.mean[constant])


def test_val_fraction():
    d = load_dataset("regression", n=100, val_fraction=0.3)
    assert (len(d.x_train), len(d.x_test)) == (70, 30)
    with pytest.raises(ValueError, match="val_fraction"):
        load_dataset("regression", val_fraction=0.0)


def test_embedded_errors():
    with pytest.raises(
        ValueError, match=r"available: digits.*\.npz or \.npy or \.csv file or an image folder"
    ):
        load_dataset("cifar10")
    with pytest.raises(ValueError, match=r"unknown option\(s\) classes.*n=1000, dim=10"):
        load_dataset("regression", classes=3)
    with pytest.raises(ValueError, match="options are: none"):
        load_dataset("mnist1d", n=3)
    with pytest.raises(ValueError, match="options are: images=False"):
        load_dataset("digits", n=3)
    with pytest.raises(ValueError, match="must be an integer"):
        load_dataset("spirals", n=10.5)
    with pytest.raises(ValueError, match="must be a number"):
        load_dataset("spirals", noise="high")
    with pytest.raises(ValueError, match="condition must be >= 1"):
        load_dataset("quadratic", condition=0.5)


# --- user files ------------------------------------------------------------------------------


def test_npz_with_test_split_and_label_remap(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(
        path,
        x=rng.normal(size=(30, 3)),
        y=np.array([5, 7, 9] * 10),
        x_test=rng.normal(size=(6, 3)),
        y_test=np.array([7, 9] * 3),
    )
    d = load_dataset(path)
    _assert_well_formed(d)
    assert d.name == "mine" and d.classes == [5, 7, 9] and d.num_classes == 3
    assert d.y_train[:3].tolist() == [0, 1, 2] and d.y_test[:2].tolist() == [1, 2]
    assert not d.test_is_validation and len(d.x_test) == 6


def test_npz_regression_and_forced_task(tmp_path):
    path = tmp_path / "r.npz"
    np.savez(path, x=np.arange(40.0).reshape(20, 2), y=np.linspace(0, 1, 20))
    d = load_dataset(str(path), val_fraction=0.25)
    assert d.task == "regression" and d.y_train.shape == (15, 1)
    path2 = tmp_path / "c.npz"
    np.savez(path2, x=np.arange(40.0).reshape(20, 2), y=np.arange(20) % 2)
    assert load_dataset(path2).task == "classification"
    assert load_dataset(path2, task="regression").task == "regression"


def test_csv(tmp_path):
    path = tmp_path / "flowers.csv"
    lines = ["a,species,b"] + [f"{i},{['x', 'y'][i % 2]},{i * 0.5}" for i in range(20)]
    path.write_text("\n".join(lines) + "\n")
    d = load_dataset(path, target="species")
    _assert_well_formed(d)
    assert d.input_dim == 2 and d.classes == ["x", "y"] and d.test_is_validation
    numeric = tmp_path / "n.csv"
    numeric.write_text("f,t\n" + "".join(f"{i},{i * 1.5}\n" for i in range(10)))
    assert load_dataset(numeric, target="t").task == "regression"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_dataset(tmp_path / "nope.npz")
    np.savez(tmp_path / "bad.npz", features=np.zeros((3, 2)), y=np.zeros(3))
    with pytest.raises(ValueError, match="no array named 'x'; found features, y"):
        load_dataset(tmp_path / "bad.npz")
    np.savez(tmp_path / "len.npz", x=np.zeros((3, 2)), y=np.zeros(4))
    with pytest.raises(ValueError, match="3 rows but targets have 4"):
        load_dataset(tmp_path / "len.npz")
    x = np.zeros((10, 2))
    x[0, 0] = x[3, 1] = np.nan
    np.savez(tmp_path / "nan.npz", x=x, y=np.arange(10.0))
    with pytest.raises(ValueError, match="2 NaN"):
        load_dataset(tmp_path / "nan.npz")
    csv = _write(tmp_path / "d.csv", "a,b\n1,2\n3,4\n")
    with pytest.raises(ValueError, match="needs option target=COLUMN; columns: a, b"):
        load_dataset(csv)
    with pytest.raises(ValueError, match="no column 'c'; columns: a, b"):
        load_dataset(csv, target="c")
    with pytest.raises(ValueError, match="unknown option"):
        load_dataset(csv, target="a", delimiter=";")
    bad = _write(tmp_path / "e.csv", "a,b\n1,2\nhello,4\n")
    with pytest.raises(ValueError, match=r"e\.csv:3: column 'a' has non-numeric value 'hello'"):
        load_dataset(bad, target="b")
    gap = _write(tmp_path / "g.csv", "a,b\n1,\n3,4\n5,6\n")
    with pytest.raises(ValueError, match="1 NaN"):
        load_dataset(gap, target="b")
