"""Nothing lost, one line per failure (docs/reliability.md): every case of issue 12.

In-process cases run in `make test`; the ones with real processes and signals (kill -9,
Ctrl-C, two processes on one run directory) are marked slow (`make test-slow`, CI).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nnopt import atomic
from nnopt.cli import main
from nnopt.recipe import Recipe
from nnopt.training import train
from nnopt.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from nnopt.training.rundir import RunLock

RECIPE = """
name = "tiny"
seed = 0
[data]
name = "digits"
[model]
kind = "mlp"
hidden = [16]
[optimizer]
name = "adam"
lr = 0.01
[train]
steps = 45
batch_size = 32
eval_every = 15
checkpoint_every = 10
"""


@pytest.fixture
def recipe_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(RECIPE)
    return path


def one_line(capsys, command: str = "train") -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"nnopt {command}: error: "), err
    return err[0]


def trained(recipe_file: Path, out: Path, capsys) -> Path:
    assert main(["train", str(recipe_file), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    return out


# --- data lost or silently wrong -----------------------------------------------------------


def test_the_last_step_is_checkpointed_when_checkpoint_every_does_not_divide_steps(tmp_path):
    result = train(Recipe.loads(RECIPE), tmp_path / "run")
    assert result.summary["steps"] == 45
    payload = load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)
    assert payload["run"]["step"] == 45  # was 40: the final model was never saved
    saved = {k: v for k, v in payload["model"].items()}
    for name, value in result.model.state_dict().items():
        assert torch.equal(saved[name], value)


@pytest.mark.parametrize(
    "edit, field",
    [
        (("lr = 0.01", "lr = 0.1"), "optimizer.lr"),
        (('name = "adam"', 'name = "sgd"'), "optimizer.name"),
        (("hidden = [16]", "hidden = [32]"), "model.hidden"),  # was a size-mismatch traceback
    ],
)
def test_resume_refuses_an_edited_recipe_naming_the_field(
    recipe_file, tmp_path, capsys, edit, field
):
    run = trained(recipe_file, tmp_path / "run", capsys)
    saved = run / "recipe.toml"
    saved.write_text(saved.read_text().replace(*edit))
    before = (run / CHECKPOINT_NAME).read_bytes()
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    line = one_line(capsys)
    assert "started with another recipe" in line and f"{field}:" in line
    assert (run / CHECKPOINT_NAME).read_bytes() == before  # nothing was trained or written


def test_resume_with_set_changes_a_field_on_purpose_and_records_it(recipe_file, tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(["train", str(recipe_file), "--out", str(run), "--quiet", "--set", "train.steps=20"])
        == 0
    )
    assert main(["train", "--resume", str(run), "--quiet", "--set", "train.steps=45"]) == 0
    capsys.readouterr()
    assert load_checkpoint(run / CHECKPOINT_NAME)["run"]["step"] == 45  # extended
    assert Recipe.load(run / "recipe.toml").train.steps == 45  # and recorded
    assert main(["train", "--resume", str(run), "--quiet", "--set", "optimizer.lr=0.5"]) == 0
    capsys.readouterr()
    # An edit not named with --set is still refused.
    saved = run / "recipe.toml"
    saved.write_text(saved.read_text().replace("hidden = [16]", "hidden = [8]"))
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    assert "model.hidden" in one_line(capsys)


def test_resume_refuses_another_recipe_file(recipe_file, tmp_path, capsys):
    run = trained(recipe_file, tmp_path / "run", capsys)
    other = tmp_path / "other.toml"
    other.write_text(RECIPE.replace('name = "adam"', 'name = "sgd"'))
    assert main(["train", str(other), "--resume", str(run), "--quiet"]) == 2
    assert "optimizer.name: 'adam' when the run started, 'sgd' now" in one_line(capsys)


def test_a_run_directory_in_use_is_refused_with_one_line(recipe_file, tmp_path, capsys):
    run = tmp_path / "run"
    with RunLock(run):  # as another live process would hold it
        assert main(["train", str(recipe_file), "--out", str(run), "--quiet"]) == 2
        assert "is in use by another nnopt process" in one_line(capsys)
    assert main(["train", str(recipe_file), "--out", str(run), "--quiet"]) == 0  # released


def test_a_fresh_run_never_overwrites_a_run_already_there(recipe_file, tmp_path):
    run = tmp_path / "run"
    train(Recipe.loads(RECIPE), run)
    before = (run / CHECKPOINT_NAME).read_bytes()
    with pytest.raises(Exception, match="already holds a run"):
        train(Recipe.loads(RECIPE.replace("lr = 0.01", "lr = 0.5")), run)
    assert (run / CHECKPOINT_NAME).read_bytes() == before


# --- one line, not a traceback -------------------------------------------------------------


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def _not_a_checkpoint(path: Path) -> None:
    torch.save({"weights": torch.zeros(3)}, path)


@pytest.mark.parametrize(
    "damage, expected",
    [
        (_truncated, "is unreadable (RuntimeError: PytorchStreamReader failed"),
        (lambda p: p.write_bytes(b""), "is unreadable (EOFError"),
        (lambda p: p.write_bytes(b"\x80\x04garbage" * 10), "is unreadable ("),
        (_not_a_checkpoint, "is not an nnopt checkpoint (no 'model', 'optimizer', 'rng')"),
    ],
    ids=["truncated", "empty", "garbage", "wrong-content"],
)
def test_a_damaged_checkpoint_is_one_line_naming_the_file(
    recipe_file, tmp_path, capsys, damage, expected
):
    run = trained(recipe_file, tmp_path / "run", capsys)
    damage(run / CHECKPOINT_NAME)
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    line = one_line(capsys)
    assert str(run / CHECKPOINT_NAME) in line and expected in line
    assert "start the run afresh" in line


def test_out_naming_a_file_is_one_line(recipe_file, tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("mine")
    assert main(["train", str(recipe_file), "--out", str(target), "--quiet"]) == 2
    assert "cannot use" in one_line(capsys) and target.read_text() == "mine"


def test_a_directory_given_as_a_data_file_is_one_line(tmp_path, capsys):
    (tmp_path / "data.csv").mkdir()
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        RECIPE.replace(
            'name = "digits"', f'name = "{tmp_path / "data.csv"}"\noptions = {{target = "y"}}'
        )
    )
    assert main(["train", str(recipe), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "is a directory: data.name must name a .csv file" in one_line(capsys)


def _refuse(code: int):
    def write_with(path, write):
        raise OSError(code, os.strerror(code), str(path))

    return write_with


@pytest.mark.parametrize(
    "code, remedy",
    [
        (errno.EROFS, "the file system is read-only: choose another --out"),
        (errno.EACCES, "permission denied"),
        (errno.ENOSPC, "free some space and run again"),
    ],
)
def test_a_refusing_file_system_at_start_is_one_line_exit_1(
    recipe_file, tmp_path, capsys, monkeypatch, code, remedy
):
    monkeypatch.setattr(atomic, "write_with", _refuse(code))
    assert main(["train", str(recipe_file), "--out", str(tmp_path / "run"), "--quiet"]) == 1
    line = one_line(capsys)
    assert os.strerror(code) in line and remedy in line and "recipe.toml" in line


def test_a_full_disk_while_saving_keeps_the_checkpoint_and_says_so(
    recipe_file, tmp_path, capsys, monkeypatch
):
    run = tmp_path / "run"
    train(Recipe.loads(RECIPE), run, stop_after=20)
    before = (run / CHECKPOINT_NAME).read_bytes()

    def full_disk_save(obj, f, *args, **kwargs):  # what torch.save raises on a full disk
        Path(f).write_bytes(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full_disk_save)
    monkeypatch.setattr(
        atomic.shutil, "disk_usage", lambda p: type("U", (), {"free": 0, "total": 1, "used": 1})
    )
    assert main(["train", "--resume", str(run), "--quiet"]) == 1
    line = one_line(capsys)
    assert f"{run / CHECKPOINT_NAME}: No space left on device" in line
    assert "--resume RUN_DIR" in line
    assert (run / CHECKPOINT_NAME).read_bytes() == before  # the last good one, intact
    assert atomic.stray_temporaries(run) == []


def test_a_bug_keeps_its_traceback_and_asks_for_a_report(recipe_file, tmp_path, monkeypatch):
    env = {**os.environ, "NNOPT_DEBUG": ""}
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; import nnopt.training as t; "
         "t.train = lambda *a, **k: 1 / 0; from nnopt.cli import main; "
         f"sys.exit(main(['train', {str(recipe_file)!r}, '--out', {str(tmp_path / 'r')!r}]))"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 70
    assert "ZeroDivisionError" in proc.stderr and "please report it" in proc.stderr


# --- smaller -------------------------------------------------------------------------------


def test_stray_temporaries_of_killed_writes_are_cleaned_on_the_next_start(recipe_file, tmp_path):
    run = tmp_path / "run"
    train(Recipe.loads(RECIPE), run, stop_after=20)
    strays = [run / f".{CHECKPOINT_NAME}.k{i}.tmp" for i in range(3)]
    for stray in strays:
        stray.write_bytes(b"half a checkpoint")
    train(Recipe.loads(RECIPE), run, resume=True)
    assert not any(s.exists() for s in strays) and atomic.stray_temporaries(run) == []


def test_divergence_before_any_checkpoint_does_not_claim_one_was_kept(tmp_path):
    recipe = Recipe.loads(RECIPE).with_overrides(["optimizer.lr=1e12", "optimizer.name=sgd"])
    result = train(recipe, tmp_path / "run")
    assert result.diverged
    kept = (tmp_path / "run" / CHECKPOINT_NAME).exists()
    message = result.summary["message"]
    assert ("keeping the last good checkpoint" in message) == kept
    assert kept or "no checkpoint was written yet" in message


def test_every_run_file_has_the_mode_a_plain_open_gives(recipe_file, tmp_path, capsys):
    run = trained(recipe_file, tmp_path / "run", capsys)
    expected = 0o666 & ~atomic.umask()
    modes = {p.name: p.stat().st_mode & 0o777 for p in run.iterdir()}
    assert modes and set(modes.values()) == {expected}, modes  # recipe.toml was 0600


# --- real processes and signals (slow) ------------------------------------------------------


def _nnopt(*args: str, cwd: Path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "nnopt", *args], cwd=cwd, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs,
    )  # fmt: skip


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def _wait_for(condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def _steps(n: int) -> str:
    return (
        RECIPE.replace("steps = 45", f"steps = {n}")
        .replace("checkpoint_every = 10", "")
        .replace("eval_every = 15", "eval_every = 100")
    )


LONG = _steps(20000)


def _compare(tmp_path: Path, recipe: str = LONG) -> subprocess.Popen:
    (tmp_path / "long.toml").write_text(recipe)
    return _nnopt(
        "compare", "long.toml", "--vary", "optimizer.name=sgd,adam", "--seeds", "2",
        "--jobs", "2", "--out", "cmp", cwd=tmp_path,
    )  # fmt: skip


@pytest.mark.slow
def test_compare_workers_die_with_a_killed_parent(tmp_path):
    proc = _compare(tmp_path)
    assert _wait_for(lambda: len(_children(proc.pid)) == 2, 120), "no workers started"
    workers = _children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    # They used to be reparented, train every queued seed and idle forever.
    assert _wait_for(lambda: not any(map(_alive, workers)), 15), "workers outlived the parent"


@pytest.mark.slow
def test_ctrl_c_stops_compare_at_once_and_the_rerun_resumes(tmp_path):
    proc = _compare(tmp_path, _steps(3000))
    runs = tmp_path / "cmp" / "runs"
    assert _wait_for(lambda: len(list(runs.glob("sgd/seed-*/checkpoint.pt"))) >= 1, 180)
    workers = _children(proc.pid)
    started = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends: the whole group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err
    assert time.monotonic() - started < 20  # not after running every queued seed
    assert not any(map(_alive, workers))
    cut = {c.parent: load_checkpoint(c)["run"]["step"] for c in runs.glob("*/seed-*/*.pt")}
    assert cut and all(0 < step < 3000 for step in cut.values())
    assert not list(runs.glob("adam/seed-*"))  # queued runs were never started
    # The same command picks every run up where its checkpoint left it.
    again = _compare(tmp_path, _steps(3000))
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    for run_dir in cut:
        rows = [line.split(",")[0] for line in (run_dir / "metrics.csv").read_text().split()]
        assert rows[1:] == [str(s) for s in range(100, 3001, 100)]  # no step run twice
        assert load_checkpoint(run_dir / CHECKPOINT_NAME)["run"]["step"] == 3000


@pytest.mark.slow
def test_two_trains_on_one_directory_one_refused_and_lock_freed_by_kill(recipe_file, tmp_path):
    (tmp_path / "long.toml").write_text(LONG)
    first = _nnopt("train", "long.toml", "--out", "run", "--quiet", cwd=tmp_path)
    assert _wait_for(lambda: (tmp_path / "run" / CHECKPOINT_NAME).exists(), 120)
    second = _nnopt("train", "--resume", "run", "--quiet", cwd=tmp_path)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 2 and "is in use by another nnopt process" in err
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    with RunLock(tmp_path / "run"):  # the OS released it with the process
        pass


def test_compare_refuses_a_changed_recipe_naming_the_field(recipe_file, tmp_path, capsys):
    out = str(tmp_path / "cmp")
    assert main(["compare", str(recipe_file), "--seeds", "1", "--out", out, "--quiet"]) == 0
    capsys.readouterr()
    changed = ["--set", "optimizer.lr=0.02"]
    assert (
        main(["compare", str(recipe_file), "--seeds", "1", "--out", out, "--quiet", *changed]) == 2
    )
    line = one_line(capsys, "compare")
    assert "holds a run of a different recipe (optimizer.lr: 0.01 when the run started" in line
