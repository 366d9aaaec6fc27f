"""The comparison's pictures: one line per variant (median over seeds), a band for min-max."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nnopt import atomic  # noqa: E402
from nnopt.experiments.stats import RunRecord  # noqa: E402

LABELS = {
    "val_accuracy": "validation accuracy",
    "val_loss": "validation loss",
    "train_loss": "training loss (mean since last evaluation)",
    "lr": "learning rate",
}
LINESTYLES = ("-", (0, (5, 3)), (0, (1, 2)), (0, (6, 2, 1, 2)))


def _aligned(records: list[RunRecord], key: str, x_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows of seeds aligned on evaluation index: x (median across seeds) and y (seeds x evals)."""
    histories = [r.history for r in records if r.history and not r.diverged]
    if not histories:
        return np.empty(0), np.empty((0, 0))
    n = min(len(h) for h in histories)
    y = np.array([[row.get(key, math.nan) for row in h[:n]] for h in histories], dtype=float)
    x = np.median(np.array([[row[x_key] for row in h[:n]] for h in histories], dtype=float), 0)
    return x, y


def plot_metric(
    by_variant: dict[str, list[RunRecord]],
    key: str,
    path: Path,
    *,
    x_key: str = "step",
    log_y: bool = False,
    title: str = "",
    distinct_lines: bool = False,
) -> Path:
    """``key`` against ``x_key`` for every variant: median line and min-max band over seeds."""
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=110)
    lines = 0
    for i, (variant, records) in enumerate(by_variant.items()):
        x, y = _aligned(records, key, x_key)
        color = f"C{i % 10}"
        diverged = sum(r.diverged for r in records)
        if y.size == 0:
            if diverged:  # say so in the legend rather than leave the variant out silently
                ax.plot([], [], color=color, marker="x", ls="none", label=f"{variant}: diverged")
            continue
        seeds = y.shape[0]
        label = (
            f"{variant} (n={seeds}, {diverged} diverged)" if diverged else f"{variant} (n={seeds})"
        )
        # Curves that coincide (the same lr schedule, say) stay visible with their own dashes.
        ls = LINESTYLES[lines % len(LINESTYLES)] if distinct_lines else "-"
        lines += 1
        ax.plot(x, np.nanmedian(y, 0), color=color, lw=2, ls=ls, label=label)
        if seeds > 1:
            ax.fill_between(x, np.nanmin(y, 0), np.nanmax(y, 0), color=color, alpha=0.18, lw=0)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("wall time (s)" if x_key == "time" else "optimizer step")
    ax.set_ylabel(LABELS.get(key, key))
    ax.set_title(
        f"{title or LABELS.get(key, key)}: median over seeds, band = min to max", fontsize=11
    )
    ax.grid(True, alpha=0.3, which="both")
    entries = len(ax.get_legend_handles_labels()[0])
    if entries > 3:  # a long legend would cover curves: put it beside the axes
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9, frameon=False)
    elif entries:
        ax.legend(loc="best", fontsize=9, framealpha=0.85)
    fig.tight_layout()
    atomic.save_figure(path, fig)
    plt.close(fig)
    return path


def comparison_plots(by_variant: dict[str, list[RunRecord]], metric: str, out: Path) -> list[Path]:
    """The four plots of a comparison report; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    label = LABELS.get(metric, metric)
    return [
        plot_metric(by_variant, metric, out / f"{metric}_vs_step.png", title=f"{label} by step"),
        plot_metric(
            by_variant,
            metric,
            out / f"{metric}_vs_time.png",
            x_key="time",
            title=f"{label} by wall time",
        ),
        plot_metric(
            by_variant, "train_loss", out / "train_loss.png", log_y=True, title="training loss"
        ),
        plot_metric(
            by_variant,
            "lr",
            out / "lr.png",
            log_y=True,
            title="learning rate",
            distinct_lines=True,
        ),
    ]
