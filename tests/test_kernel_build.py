"""The native kernels' build: announced, kept out of a run's wall time, safe on a bad cache."""

from __future__ import annotations

import time
import warnings

import pytest
import torch
from recipe_helpers import make

from nnopt.optim import RMSProp
from nnopt.optim.kernels import build, cpu
from nnopt.training import train

BUILD_SECONDS = 1.5


@pytest.fixture
def unbuilt(monkeypatch):
    """The library as if never loaded in this process (restored afterwards)."""
    monkeypatch.setattr(build, "_loaded", {})
    cpu._library.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    cpu._library.cache_clear()


def test_the_kernel_build_is_not_counted_in_the_wall_time(unbuilt, tmp_path):
    """A slow first build (here 1.5 s) happens before the run's clock starts."""
    real = build._build_and_load
    calls = []

    def slow_build():
        calls.append(time.perf_counter())
        time.sleep(BUILD_SECONDS)
        return real()

    unbuilt.setattr(build, "_build_and_load", slow_build)
    recipe = make(
        optimizer={"name": "rmsprop", "lr": 1e-3},
        train={"steps": 5, "eval_every": 5, "threads": 1},
    )
    result = train(recipe, tmp_path / "run")
    assert len(calls) == 1  # the run did build the library, once
    assert cpu.available()
    assert result.summary["wall_time"] < BUILD_SECONDS
    assert result.history[0]["time"] < BUILD_SECONDS


def test_a_build_is_announced_on_stderr(unbuilt, tmp_path, capsys):
    unbuilt.setenv("NNOPT_CACHE_DIR", str(tmp_path / "cache"))
    unbuilt.setattr(build, "_compile", lambda *args: "compiler said no")
    with pytest.warns(RuntimeWarning, match="compiler said no"):
        assert build.load() is None
    err = capsys.readouterr().err
    assert f"building the native CPU kernels (once per machine) into {tmp_path}" in err
    assert "kernel build failed in" in err


def test_a_cache_dir_that_is_a_file_gives_one_warning_and_eager_steps(unbuilt, tmp_path):
    not_a_dir = tmp_path / "cache"
    not_a_dir.write_text("a file, not a directory")
    unbuilt.setenv("NNOPT_CACHE_DIR", str(not_a_dir))
    with pytest.warns(RuntimeWarning, match="cannot create the kernel cache") as caught:
        assert not cpu.available()
    assert len(caught) == 1
    assert "NNOPT_CACHE_DIR" in build.failure_reason()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning from the steps
        p = torch.nn.Parameter(torch.ones(3))
        p.grad = torch.ones(3)
        RMSProp([p], lr=0.1).step()
    assert p.detach().lt(1).all()
