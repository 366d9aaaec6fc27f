"""A progress bar for training (rich), silent when asked or when not on a terminal.

It fits the terminal's width, whatever that is (80 columns by default): the step counter
always shows whole, then the fields that fit, by priority; the bar takes what is left.
"""

from __future__ import annotations

import sys
from typing import Any

from rich.cells import cell_len
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
from rich.progress import Progress as RichProgress

from nnopt.names import VALIDATION, metric_text

LABEL = "train"
MIN_BAR, MAX_BAR = 10, 40
# A field's place on the line, and the order they go when the line is too narrow: first the
# lr, then the held-out loss, the ETA, the held-out accuracy, the training loss.
ORDER = ("loss", "lr", "val_loss", "val_accuracy", "eta")
DROP_FIRST = ("lr", "val_loss", "eta", "val_accuracy", "loss")


def fit(fields: dict[str, str], width: int) -> tuple[str, int]:
    """The fields that fit in ``width`` columns beside a bar of at least MIN_BAR, joined in
    their ORDER, and the bar's width: the fields first, the bar takes the rest (to MAX_BAR)."""
    shown = dict(fields)
    for name in DROP_FIRST:
        text = "  ".join(shown[k] for k in ORDER if k in shown)
        if MIN_BAR + 1 + cell_len(text) <= width:
            break
        shown.pop(name, None)
    text = "  ".join(shown[k] for k in ORDER if k in shown)
    spare = width - (cell_len(text) + 1 if text else 0)
    return text, max(1, min(MAX_BAR, spare))


def eta_text(seconds: float | None) -> str:
    """rich's ETA format: 0:01:05, or -:--:-- before there is a rate to go by."""
    if seconds is None:
        return "-:--:--"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """Steps done, smoothed loss, lr and the last evaluation; refreshes ~4 times a second.

    ``held_out`` ("test" or "validation") names the evaluation's numbers (nnopt.names)."""

    def __init__(
        self, total: int, held_out: str = VALIDATION, *, disable: bool = False, start: int = 0
    ) -> None:
        self.enabled = not disable and sys.stderr.isatty()
        self.total = total
        self.held_out = held_out
        self.loss: float | None = None
        self.evaluation: dict[str, str] = {}
        self._bar = None
        if self.enabled:
            self._bar_column = BarColumn(bar_width=MAX_BAR)
            self._bar = RichProgress(
                TextColumn(f"[bold]{LABEL}"),
                self._bar_column,
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                refresh_per_second=4,
            )
            self._task = self._bar.add_task(LABEL, total=total, completed=start, info="")

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
        self._bar.advance(self._task)
        fields = {"loss": f"loss {self.loss:.4f}", "lr": f"lr {lr:.2e}", **self.evaluation}
        fields["eta"] = eta_text(self._bar.tasks[0].time_remaining)
        # The columns beside the fields: the label, the counter at its widest, rich's
        # one-space gaps between the four columns, and one spare so no line fills the width.
        counter = 2 * len(str(self.total)) + 1
        room = self._bar.console.width - cell_len(LABEL) - counter - 3 - 1
        info, self._bar_column.bar_width = fit(fields, room)
        self._bar.update(self._task, info=info)

    def show_eval(self, row: dict[str, Any]) -> None:
        self.evaluation = {"val_loss": metric_text("val_loss", row["val_loss"], self.held_out)}
        accuracy = row.get("val_accuracy")
        if accuracy is not None and accuracy == accuracy:
            self.evaluation["val_accuracy"] = metric_text("val_accuracy", accuracy, self.held_out)
