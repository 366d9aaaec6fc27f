"""`nnopt compare --executor ray` on a local Ray cluster of 2 workers: the same files as a local
`--jobs 1` comparison, bitwise (times aside), through a killed worker and an interrupt.

`make test-ray` runs these (they need the `ray` extra and start a cluster: ~1-2 min)."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch
from recipe_helpers import tiny_run

from nnopt.errors import UserError
from nnopt.experiments.api import compare
from nnopt.experiments.executors import make_executor
from nnopt.training.checkpoint import CHECKPOINT_NAME
from nnopt.training.metrics import read_metrics

ray = pytest.importorskip("ray")

RECIPE = tiny_run(steps=1500, eval_every=100, checkpoint_every=100)
VARY = ["optimizer.name=sgd,adam"]
SEEDS = 2
# Not the run's: the wall clock, and the process's global Python/NumPy RNG states, which a
# checkpoint records but nnopt never seeds (they differ between any two processes).
UNTIMED = {"time", "wall_time", "elapsed"}
PROCESS_RNG = {"python", "numpy"}


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING)  # fmt: skip
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The undisturbed comparison every Ray one must equal: local, one run at a time."""
    out = tmp_path_factory.mktemp("local") / "cmp"
    _compare(out, "local")
    return out


def _compare(out: Path, executor: str = "ray", **kwargs):
    return compare(RECIPE, vary=VARY, seeds=SEEDS, out=out, executor=executor, report=False,
                   **kwargs)  # fmt: skip


def _untimed(value, key=""):
    """``value`` without wall-clock fields and process RNG states, tensors as lists."""
    if isinstance(value, dict):
        return {k: _untimed(v, k) for k, v in value.items()
                if k not in UNTIMED and not (key == "rng" and k in PROCESS_RNG)}  # fmt: skip
    if isinstance(value, list | tuple):
        return [_untimed(v) for v in value]
    if isinstance(value, torch.Tensor):
        return (str(value.dtype), value.tolist())  # exact: a float prints all its bits
    return value


def _files(out: Path) -> dict[str, object]:
    """Every file a run wrote, by its path in the comparison, as what must match bitwise."""
    seen: dict[str, object] = {}
    for path in sorted((out / "runs").rglob("*")):
        if path.is_dir():
            continue
        name = str(path.relative_to(out))
        if path.name == CHECKPOINT_NAME:
            seen[name] = _untimed(torch.load(path, weights_only=True))
        elif path.suffix == ".csv":
            seen[name] = _untimed(read_metrics(path))
        elif path.suffix == ".json":
            seen[name] = _untimed(json.loads(path.read_text()))
        else:
            seen[name] = path.read_bytes()
    return seen


def _summary(result) -> list[dict]:
    """The comparison's own numbers, per run (run directories are under different outs)."""
    return [_untimed({**r.summary, "variant": r.variant, "seed": r.seed}) for r in result.records]


def _assert_same(out: Path, result, local: Path) -> None:
    expected = _files(local)
    assert sorted(_files(out)) == sorted(expected)
    for name, content in _files(out).items():
        assert content == expected[name], name
    assert _summary(result) == _summary(compare(RECIPE, vary=VARY, seeds=SEEDS, out=local,
                                                report=False))  # fmt: skip


def test_two_ray_workers_equal_one_local_process_bitwise(cluster, local, tmp_path):
    seen = []
    result = _compare(tmp_path / "cmp", on_event=seen.append)
    _assert_same(tmp_path / "cmp", result, local)
    done = [(e.job.variant, e.job.seed) for e in seen if e.kind == "done"]
    assert sorted(done) == sorted((v, s) for v in ("sgd", "adam") for s in (0, 1))  # once each
    assert any(e.kind == "progress" and 0 < e.step < 1500 for e in seen)  # live, mid-run


def _task_pids(text: str) -> list[int]:
    """Ray workers running a task whose name contains ``text`` (their process title)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            title = (proc / "cmdline").read_bytes().split(b"\0")[0].decode()
        except (OSError, ValueError):
            continue
        if title.startswith("ray::nnopt_run") and text in title:
            pids.append(int(proc.name))
    return pids


def test_a_killed_worker_is_retried_from_its_checkpoint_with_equal_results(
    cluster, local, tmp_path
):
    out = tmp_path / "cmp"
    run_dir = out / "runs" / "sgd" / "seed-0"
    killed: list[int] = []

    def kill_mid_run() -> None:
        end = time.monotonic() + 300
        while time.monotonic() < end and not killed:
            if (run_dir / CHECKPOINT_NAME).is_file() and not (run_dir / "summary.json").is_file():
                for pid in _task_pids("sgd seed 0"):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_mid_run, daemon=True)
    killer.start()
    starts = []
    result = _compare(out, on_event=lambda e: starts.append((e.job.variant, e.job.seed, e.step)))
    killer.join()
    assert killed, "the worker was never caught mid-run"
    _assert_same(out, result, local)
    # The retry picked the run up where the checkpoint left it: its steps went back, not to 0.
    steps = [step for v, s, step in starts if (v, s) == ("sgd", 0)]
    back = [b for a, b in zip(steps, steps[1:], strict=False) if b <= a]
    assert back and all(step > 0 for step in back)


def test_an_interrupted_comparison_resumes_to_equal_results(cluster, local, tmp_path):
    out = tmp_path / "cmp"

    def interrupt(event) -> None:
        if event.kind == "progress" and event.step >= 300:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _compare(out, on_event=interrupt)
    cut = {}
    for checkpoint in (out / "runs").rglob(CHECKPOINT_NAME):
        if not (checkpoint.parent / "summary.json").is_file():
            cut[checkpoint.parent] = torch.load(checkpoint, weights_only=True)["run"]["step"]
    assert cut and all(0 < step < 1500 for step in cut.values())
    first: dict[Path, int] = {}

    def note(event) -> None:
        run_dir = Path(event.job.run_dir).resolve()
        first.setdefault(run_dir, event.step)

    result = _compare(out, on_event=note)
    _assert_same(out, result, local)
    for run_dir, step in cut.items():
        assert first[run_dir.resolve()] >= step  # resumed from its checkpoint, not run again


def test_a_recipe_error_in_a_task_is_one_line_and_not_retried(cluster, tmp_path):
    broken = RECIPE.replace('kind = "mlp"\nhidden = [8]', 'factory = "no_such_module:build"')
    seen = []
    with pytest.raises(UserError) as error:
        compare(broken, seeds=1, out=tmp_path / "cmp", executor="ray", report=False,
                on_event=seen.append)  # fmt: skip
    assert "\n" not in str(error.value) and "no_such_module" in str(error.value)
    assert [e.kind for e in seen] == ["error"]  # returned once: nothing for Ray to retry


def test_more_cpus_per_run_than_any_node_has_is_refused(cluster, tmp_path):
    with pytest.raises(UserError, match="--cpus-per-run 64"):
        compare(RECIPE, seeds=1, out=tmp_path / "cmp",
                executor=make_executor("ray", cpus_per_run=64), report=False)  # fmt: skip


def test_objects_passed_from_python_are_refused_in_one_line(cluster, tmp_path):
    with pytest.raises(UserError, match="cannot travel to a Ray cluster"):
        compare(RECIPE, seeds=1, out=tmp_path / "cmp", executor="ray", report=False,
                model=torch.nn.Linear(64, 10))  # fmt: skip


def test_ctrl_c_of_the_command_stops_its_tasks_and_the_same_command_resumes(tmp_path):
    """The real signal, to the whole process group (Ray's workers get it too)."""
    import subprocess
    import sys

    (tmp_path / "r.toml").write_text(RECIPE.replace("steps = 1500", "steps = 3000"))
    argv = [sys.executable, "-m", "nnopt", "compare", "r.toml", "--vary", VARY[0],
            "--seeds", "1", "--executor", "ray", "--out", "cmp", "--quiet"]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=tmp_path, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    runs = tmp_path / "cmp" / "runs"
    end = time.monotonic() + 300
    while time.monotonic() < end and not list(runs.glob("*/seed-*/" + CHECKPOINT_NAME)):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err, err
    cut = list(runs.glob("*/seed-*/" + CHECKPOINT_NAME))
    assert cut and not list(runs.glob("*/seed-*/summary.json"))
    assert not _task_pids("seed 0")  # no task left training
    again = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    for checkpoint in cut:
        steps = [row["step"] for row in read_metrics(checkpoint.parent / "metrics.csv")]
        assert steps == list(range(100, 3001, 100))  # no step run twice
