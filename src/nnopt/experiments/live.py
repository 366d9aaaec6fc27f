"""What `nnopt compare` shows while its runs train: every running job, live.

On a terminal, a rich table redrawn a few times a second: variant, seed, step of total, the
last evaluation's metric, elapsed time and ETA for each running job, and how many are done.
Off a terminal (a log, CI), one line when a job starts and one when it ends, so a log shows
progress without a redraw per step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from nnopt.experiments.jobs import Event
from nnopt.names import metric_text


@dataclass
class _Running:
    started: float
    step: int = 0
    total: int = 0
    row: dict[str, Any] | None = None
    first_step: int | None = None  # where this process picked the run up (a resumed run)
    held_out: str = "validation"  # what the row's val_* are called (nnopt.names)


@dataclass
class CompareProgress:
    """Feed it every job event (``on_event``); use as a context manager around the runs."""

    console: Console
    total: int
    quiet: bool = False
    done: int = 0
    running: dict[tuple[str, int], _Running] = field(default_factory=dict)
    _live: Live | None = None

    def __enter__(self) -> CompareProgress:
        if not self.quiet and self.console.is_terminal:
            # auto_refresh off: no drawing thread in this process while it forks workers.
            self._live = Live(self._table(), console=self.console, auto_refresh=False)
            self._live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.update(self._table(), refresh=True)
            self._live.stop()

    def on_event(self, event: Event) -> None:
        key = (event.job.variant, event.job.seed)
        job = self.running.get(key)
        if job is None:
            job = self.running[key] = _Running(time.monotonic())
            self._line(f"      {key[0]} seed {key[1]}: started")
        if job.first_step is None:
            job.first_step = event.step
        job.step, job.total = event.step, event.total or job.total
        job.row = event.row or job.row
        job.held_out = event.held_out
        if event.kind in ("done", "error"):
            del self.running[key]
            if event.kind == "done":
                self.done += 1
                status = (event.summary or {}).get("status", "done")
                self._line(
                    f"[{self.done}/{self.total}] {key[0]} seed {key[1]}: {status}, "
                    f"{self._metric_text(job)}, {time.monotonic() - job.started:.1f} s"
                )
        if self._live is not None:
            self._live.update(self._table(), refresh=True)

    def _line(self, text: str) -> None:
        if not self.quiet and self._live is None:
            self.console.print(text, highlight=False)

    @staticmethod
    def _metric_text(job: _Running) -> str:
        """The last evaluation: accuracy where the task has one, else the held-out loss."""
        row = job.row
        if row is None:
            return "-"
        accuracy = row.get("val_accuracy")
        if accuracy is not None and accuracy == accuracy:
            return metric_text("val_accuracy", accuracy, job.held_out)
        loss = row.get("val_loss")
        return "-" if loss is None else metric_text("val_loss", loss, job.held_out)

    def _table(self) -> Table:
        table = Table(title=f"{self.done} of {self.total} runs done", title_justify="left")
        for name in ("variant", "seed", "step", "last evaluation", "elapsed", "ETA"):
            table.add_column(name, justify="left" if name == "variant" else "right")
        now = time.monotonic()
        for (variant, seed), job in self.running.items():
            elapsed = now - job.started
            done_here = job.step - (job.first_step or 0)
            left = job.total - job.step
            eta = f"{elapsed / done_here * left:.0f} s" if done_here > 0 else "-"
            table.add_row(
                variant,
                str(seed),
                f"{job.step}/{job.total}",
                self._metric_text(job),
                f"{elapsed:.0f} s",
                eta,
            )
        return table
