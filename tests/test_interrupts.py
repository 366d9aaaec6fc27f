"""Interrupts and resumes say what happened (issue 20, item 5): Ctrl-C names the checkpoint
kept, the steps lost and the command that continues; a resume says where it starts, or that
the run was already finished; a comparison run again says how many runs it read back (that
one: tests/test_outputs.py)."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time

from recipe_helpers import tiny_run

from nnopt.cli import main
from nnopt.training import train
from nnopt.training.checkpoint import CHECKPOINT_NAME, load_checkpoint


def test_ctrl_c_names_the_checkpoint_kept_the_steps_lost_and_the_command(tmp_path):
    (tmp_path / "long.toml").write_text(tiny_run(10**6, eval_every=15, checkpoint_every=50))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nnopt", "train", "long.toml", "--out", "run", "--quiet"],
        cwd=tmp_path, env=env, start_new_session=True, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (tmp_path / "run" / CHECKPOINT_NAME).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    # It used to print only "nnopt: interrupted".
    line = err.strip().splitlines()[-1]
    match = re.fullmatch(
        r"nnopt train: interrupted at step (\d+); the checkpoint of step (\d+) is kept"
        r"(?:, the (\d+) steps? after it are lost)?; continue with: (.+ train --resume run)",
        line,
    )
    assert match, line
    step, kept = int(match[1]), int(match[2])
    assert kept == load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)["run"]["step"]
    assert kept % 50 == 0 and step - kept == int(match[3] or 0) <= 50  # (=: during a save)
    # The command it names continues the run (here extended only to a few more steps).
    command = [*shlex.split(match[4]), "--quiet", "--set", f"train.steps={kept + 5}"]
    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"resuming run from step {kept} of {kept + 5}\n")


def test_a_resume_says_where_it_starts_and_a_finished_run_says_so(tmp_path, capsys):
    out = tmp_path / "run"
    train(
        tiny_run(45, eval_every=15, checkpoint_every=15), out, stop_after=20
    )  # stopped: checkpoint at 20
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"resuming {out} from step 20 of 45"
    assert lines[1].startswith("tiny: finished after 45 steps")
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()  # it re-printed "finished", nothing else
    assert lines[0] == f"{out} already finished: all 45 steps done, nothing to train"


def test_an_interrupt_from_python_says_how_to_resume_in_python(tmp_path):
    from nnopt.errors import Interrupted

    def stop(step, total, row, held_out):
        if step == 22:
            raise KeyboardInterrupt

    out = tmp_path / "run"
    try:
        train(tiny_run(45, eval_every=15, checkpoint_every=10), out, on_step=stop)
    except Interrupted as interrupted:
        assert str(interrupted) == (
            "interrupted at step 22; the checkpoint of step 20 is kept, the 2 steps after it "
            f"are lost; continue with: nnopt.train(recipe, {str(out)!r}, resume=True)"
        )
    else:
        raise AssertionError("no Interrupted")
    assert isinstance(Interrupted(1, None), KeyboardInterrupt)
