"""A progress bar for training (rich), silent when asked or when not on a terminal."""

from __future__ import annotations

import sys
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress


class Progress:
    """Steps done, smoothed loss, lr and the last evaluation; refreshes ~4 times a second."""

    def __init__(self, total: int, *, disable: bool = False, start: int = 0) -> None:
        self.enabled = not disable and sys.stderr.isatty()
        self.loss: float | None = None
        self.eval_text = ""
        self._bar = None
        if self.enabled:
            self._bar = RichProgress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
                refresh_per_second=4,
            )
            self._task = self._bar.add_task("train", total=total, completed=start, info="")

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self, loss: float, lr: float) -> None:
        if self._bar is None:
            return
        # An exponential average: the raw mini-batch loss is too noisy to read.
        self.loss = loss if self.loss is None else 0.98 * self.loss + 0.02 * loss
        info = f"loss {self.loss:.4f}  lr {lr:.2e}{self.eval_text}"
        self._bar.update(self._task, advance=1, info=info)

    def show_eval(self, row: dict[str, Any]) -> None:
        accuracy = row.get("val_accuracy")
        self.eval_text = f"  val_loss {row['val_loss']:.4f}"
        if accuracy is not None and accuracy == accuracy:
            self.eval_text += f"  val_acc {accuracy:.2%}"
