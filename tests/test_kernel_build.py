"""The native kernels' build: announced, kept out of a run's wall time, safe on a bad cache."""

from __future__ import annotations

import subprocess
import sys
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


def test_a_failed_build_in_parts_falls_back_to_one_unit(monkeypatch, tmp_path):
    """The two translation units failing (a compiler without -c, a full /tmp), the library
    is built as one unit with both parts, and nothing else changes."""
    commands = []
    monkeypatch.setattr(build, "_compile_in_parts", lambda *args: "part 2 failed")
    monkeypatch.setattr(build, "_run", lambda command: commands.append(command) or None)
    target = tmp_path / "lib.so"
    assert build._compile("c++", ["-O3"], target) is None
    assert len(commands) == 1 and commands[0][0] == "c++"
    assert not any(arg.startswith("-DNNOPT_PART") for arg in commands[0])
    assert target.exists()
    monkeypatch.setattr(build, "_run", lambda command: "no compiler today")
    assert build._compile("c++", ["-O3"], tmp_path / "other.so") == "no compiler today"
    assert not (tmp_path / "other.so").exists()


@pytest.mark.slow
def test_the_one_unit_build_holds_every_entry(tmp_path):
    """The fallback's library (NNOPT_PART unset: both parts in one unit) exports what the
    parallel build's does (~25 s: slow)."""
    compiler = build.find_compiler()
    if compiler is None:
        pytest.skip("no C++ compiler")
    library = tmp_path / "one.so"
    assert (
        build._run([compiler, *build.FLAG_SETS[-1], str(build.SOURCE), "-o", str(library)]) is None
    )
    # In a process of its own: two nnopt libraries in one process share their inline
    # functions' statics (the rule list among them), as any two C++ libraries would.
    probe = (
        "import ctypes, sys; lib = ctypes.CDLL(sys.argv[1]); "
        "lib.nnopt_rules.restype = ctypes.c_char_p; print(lib.nnopt_rules().decode()); "
        "print(all(hasattr(lib, f'nnopt_{r}{e}') for r in lib.nnopt_rules().decode().split(',') "
        "for e in ('', '_many', '_compact', '_compact_many', '_args_layout', '_args_size')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(library)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0].split(",") == list(cpu.rules())
    assert out[1] == "True"
