"""Evaluation on held-out data, and the metrics log (CSV, optional TensorBoard)."""

from __future__ import annotations

import csv
import importlib.util
import io
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nnopt import atomic
from nnopt.names import split_key

COLUMNS = ("step", "epoch", "time", "lr", "train_loss", "val_loss", "val_accuracy")
LANGUAGE_MODEL_COLUMNS = (*COLUMNS, "val_perplexity")  # a language model's rows add it


@torch.no_grad()
def evaluation_sums(
    model: nn.Module, loss_fn: nn.Module, chunks: Iterable[tuple[Tensor, Tensor]]
) -> tuple[float, float, float]:
    """(sum of losses, number correct, count) over a split given in chunks: sums add across
    ranks. The loss of a chunk is its mean, weighted by the chunk's size."""
    was_training = model.training
    model.eval()
    total_loss, correct, count = 0.0, 0.0, 0
    for x, target in chunks:
        out = model(x)
        total_loss += loss_fn(out, target).item() * len(target)
        if out.dim() == 2 and target.dim() == 1:
            correct += (out.argmax(dim=1) == target).sum().item()
        count += len(target)
    model.train(was_training)
    return total_loss, correct, float(count)


def metrics_from_sums(
    sums: list[float], classification: bool, language_model: bool = False
) -> dict[str, float]:
    """Mean loss and accuracy; for a language model, perplexity = exp(mean next-token loss)."""
    total_loss, correct, count = sums
    count = max(count, 1.0)
    row = {
        "val_loss": total_loss / count,
        "val_accuracy": correct / count if classification else math.nan,
    }
    if language_model:
        row["val_perplexity"] = math.exp(min(row["val_loss"], 700.0))
    return row


class MetricsLog:
    """One row per evaluation, rewritten atomically as ``metrics.csv`` after each row."""

    def __init__(self, run_dir: Path | None, rows: list[dict[str, Any]] | None = None) -> None:
        self.run_dir = run_dir
        # The list given is extended in place: a run's state holds the same rows.
        self.rows: list[dict[str, Any]] = rows if rows is not None else []
        self._tensorboard = None
        if run_dir is not None and importlib.util.find_spec("tensorboard") is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._tensorboard = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if self.run_dir is None:
            return
        buffer = io.StringIO()
        columns = LANGUAGE_MODEL_COLUMNS if "val_perplexity" in row else COLUMNS
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: _fmt(r.get(k)) for k in columns})
        atomic.write_text(self.run_dir / "metrics.csv", buffer.getvalue())
        if self._tensorboard is not None:
            for key in ("lr", "train_loss", "val_loss", "val_accuracy", "val_perplexity"):
                value = row.get(key)
                if value is not None and math.isfinite(value):
                    self._tensorboard.add_scalar(key, value, row["step"])
            self._tensorboard.flush()

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return value


def read_metrics(path: Path) -> list[dict[str, float]]:
    """Read a metrics.csv back (numbers as floats, empty cells as NaN)."""
    with open(path, newline="") as f:
        return [
            {k: float(v) if v != "" else math.nan for k, v in row.items()}
            for row in csv.DictReader(f)
        ]


def final_and_best(rows: list[dict[str, Any]], metric: str, held_out: str) -> dict[str, Any]:
    """A summary's ``final`` (the last evaluation) and ``best`` (the best by ``metric``) rows.

    Each held-out number is given as val_* (held out, whatever the split: what readers of older
    runs know) and under the split's own name (test_* or validation_*).
    """
    pick = max if metric == "val_accuracy" else min
    finite = [r for r in rows if not math.isnan(r[metric])]
    best = pick(finite, key=lambda r: r[metric]) if finite else None
    last = rows[-1] if rows else {}
    final = {
        key: last.get(k)
        for k in ("train_loss", "val_loss", "val_accuracy", "val_perplexity", "lr")
        for key in dict.fromkeys((k, split_key(k, held_out)))
    }
    if best is None:
        return {"final": final, "best": None}
    named = {metric: best[metric], split_key(metric, held_out): best[metric]}
    return {"final": final, "best": {"step": best["step"], **named}}
