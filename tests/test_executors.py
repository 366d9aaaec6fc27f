"""Where compare's runs execute (nnopt.experiments.executors): the seam below run_jobs, the options'
one-line errors, and Ray's install message (Ray's own runs: tests/ray, `make test-ray`)."""

from __future__ import annotations

import sys

import pytest
from recipe_helpers import tiny_run

from nnopt.cli import main
from nnopt.experiments.compare import expand_variants, run_comparison
from nnopt.experiments.executors import Local
from nnopt.recipe import Recipe

TINY = tiny_run(steps=10, eval_every=5)


class Recording(Local):
    """The local executor, noting what it was given."""

    def __init__(self) -> None:
        self.given: list[tuple[str, int]] = []

    def run(self, jobs, workers, threads, on_event):
        self.given += [(job.variant, job.seed) for job in jobs]
        super().run(jobs, workers, threads, on_event)


def test_an_executor_passed_to_compare_runs_every_job_and_reports_its_events(tmp_path):
    executor = Recording()
    seen = []
    variants = expand_variants([Recipe.loads(TINY)], ["optimizer.name=sgd,adam"])
    records = run_comparison(variants, 2, tmp_path, on_event=seen.append, executor=executor)
    runs = [("sgd", 0), ("sgd", 1), ("adam", 0), ("adam", 1)]
    assert executor.given == runs
    assert [(r.variant, r.seed) for r in records] == runs
    assert sorted((e.job.variant, e.job.seed) for e in seen if e.kind == "done") == sorted(runs)
    # Finished runs are read back, never handed to the executor again.
    executor.given.clear()
    run_comparison(variants, 2, tmp_path, executor=executor)
    assert executor.given == []


def _one_line_error(tmp_path, capsys, *args: str) -> str:
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY)
    assert main(["compare", str(recipe), "--out", str(tmp_path / "out"), *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnopt compare: error: "), lines
    assert not (tmp_path / "out").exists()  # refused before anything was written
    return lines[0]


def test_executor_ray_without_ray_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    line = _one_line_error(tmp_path, capsys, "--executor", "ray")
    assert "pip install 'nnopt[ray]'" in line


@pytest.mark.parametrize(
    "args, expected",
    [
        (("--address", "ray://head:10001"), "--address need --executor ray"),
        (("--cpus-per-run", "2"), "--cpus-per-run need --executor ray"),
        (("--executor", "nosuch"), "--executor must be one of local, ray, got 'nosuch'"),
    ],
)
def test_executor_options_are_checked_in_one_line(tmp_path, capsys, args, expected):
    assert expected in _one_line_error(tmp_path, capsys, *args)


def test_bench_suite_takes_the_same_executor_options() -> None:
    """bench-suite's runs go through the executor too: its options are compare's, checked
    before anything runs (a Ray option without --executor ray is one line, exit 2)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "nnopt", "bench-suite", "--quick", "--cpus-per-run", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "--cpus-per-run need --executor ray" in done.stderr
    assert "Traceback" not in done.stderr
