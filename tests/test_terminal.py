"""What a person reads on a terminal 80 columns wide (the default, and what `make demo` gets
under `script`): real processes on a real pseudo-terminal, and one name for the held-out
split everywhere (issue 20, items 4 and 7)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import sys
import termios
from pathlib import Path

import pytest
from recipe_helpers import make

from nnopt.names import format_metric, held_out_split, metric_text
from nnopt.training.progress import fit

# 1,000+ steps: a four-digit step counter is what 80 columns used to cut ("150…").
DIGITS = make(
    name="digits-terminal",
    seed=1,
    model={"kind": "mlp", "hidden": [16]},
    optimizer={"name": "adam", "lr": 0.01},
    train={"mode": "minibatch", "batch_size": 32, "steps": 1200, "eval_every": 400},
).to_toml()

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_on_terminal(args: list[str], cwd: Path, columns: int = 80) -> tuple[int, list[str]]:
    """Run ``python -m nnopt ARGS`` on a pseudo-terminal ``columns`` wide; its exit status
    and every line it drew (each redraw of a line counts as a line), escapes removed."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdin, stdout and stderr are the terminal
        os.chdir(cwd)
        for name in ("COLUMNS", "LINES", "NO_COLOR", "TERM"):
            os.environ.pop(name, None)
        os.environ["TERM"] = "xterm-256color"
        os.execv(sys.executable, [sys.executable, "-m", "nnopt", *args])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    out = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    text = ANSI.sub("", out.decode(errors="replace"))
    return os.waitstatus_to_exitcode(status), re.split(r"[\r\n]+", text)


@pytest.fixture
def digits(tmp_path: Path) -> Path:
    path = tmp_path / "digits.toml"
    path.write_text(DIGITS)
    return path


def test_train_on_80_columns_keeps_the_step_counter_and_names_the_split(digits, tmp_path):
    status, lines = run_on_terminal(["train", str(digits), "--out", "run"], tmp_path)
    assert status == 0, "\n".join(lines)
    bars = [line for line in lines if line.startswith("train ")]
    assert bars, "\n".join(lines)
    assert max(len(line) for line in bars) <= 80, "\n".join(bars)
    assert "1200/1200" in bars[-1], bars[-1]  # the step counter whole, never "120…"
    assert re.search(r"\d+:\d\d:\d\d$", bars[-1].rstrip()), bars[-1]  # and the ETA
    # digits' held-out split is carved by nnopt from the training data: "validation", in the
    # bar, the last line and the summary, with one format (a percentage) for accuracy.
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["held_out"] == "validation"
    accuracy = format_metric("val_accuracy", summary["final"]["val_accuracy"])
    assert f"validation accuracy {accuracy}" in bars[-1]
    (last,) = [line for line in lines if "finished after 1200 steps" in line]
    assert f"validation accuracy {accuracy}" in last
    assert "val_acc" not in " ".join(lines) and "test" not in last


def test_compare_table_fits_80_columns(digits, tmp_path):
    args = ["compare", str(digits), "--vary", "optimizer.lr=1e-2,1e-1", "--seeds", "2",
            "--set", "train.steps=60", "--set", "train.eval_every=30", "--target", "0.5",
            "--out", "cmp", "--quiet"]  # fmt: skip
    status, lines = run_on_terminal(args, tmp_path)
    assert status == 0, "\n".join(lines)
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
    assert any("validation accuracy over 2 seeds" in line for line in lines)
    for variant in ("1e-2", "1e-1"):
        (row,) = [line for line in lines if line.startswith(f"│ {variant}")]
        assert re.search(r"\d+\.\d\d% \[\d+\.\d\d%, \d+\.\d\d%\]", row), row  # one line, whole
    assert any("more columns in report.md" in line for line in lines)
    # report.md keeps every column, its headers naming the split as the rule says.
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert "| final validation accuracy median [min, max] | final mean ± std |" in report
    assert "wall time (s)" in report and "time to 0.5 (s)" in report


def test_the_bar_drops_fields_by_priority_never_the_counter():
    fields = {
        "loss": "loss 0.0364",
        "lr": "lr 1.00e-03",
        "val_loss": metric_text("val_loss", 0.1492, "test"),
        "val_accuracy": metric_text("val_accuracy", 0.9554, "test"),
        "eta": "0:00:05",
    }
    wide, bar = fit(fields, 200)
    assert wide.split("  ") == [fields[k] for k in ("loss", "lr", "val_loss", "val_accuracy",
                                                    "eta")] and bar == 40  # fmt: skip
    text, bar = fit(fields, 60)  # lr goes first, then the held-out loss
    assert text == "loss 0.0364  test accuracy 95.54%  0:00:05" and bar >= 10
    assert fit(fields, 30) == ("loss 0.0364", 18)
    assert fit(fields, 5) == ("", 5)


def test_one_rule_names_the_held_out_split():
    from nnopt.data import load_dataset

    assert held_out_split(carved=True) == "validation" and held_out_split(False) == "test"
    assert load_dataset("digits").test_is_validation  # nnopt carves digits' 20%
    assert "359 validation examples" in load_dataset("digits").describe()
    assert format_metric("val_accuracy", 0.97214) == "97.21%"
    assert format_metric("val_loss", 0.000216) == "0.000216"


def test_the_summary_names_the_held_out_numbers_by_their_split_and_keeps_the_old_keys(tmp_path):
    """summary.json gives each held-out number under the split's own name (digits: carved by
    nnopt, so validation_*), beside the val_* keys that readers of older runs know."""
    from nnopt.names import split_key
    from nnopt.training import train

    assert split_key("val_accuracy", "test") == "test_accuracy"
    assert split_key("train_loss", "test") == "train_loss"
    run = make(data={"name": "digits"}, train={"steps": 20, "eval_every": 10})
    train(run, tmp_path / "run", quiet=True)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    final, best = summary["final"], summary["best"]
    assert summary["held_out"] == "validation" and "test_accuracy" not in final
    assert final["validation_accuracy"] == final["val_accuracy"] is not None
    assert final["validation_loss"] == final["val_loss"]
    assert best["validation_accuracy"] == best[summary["metric"]]
