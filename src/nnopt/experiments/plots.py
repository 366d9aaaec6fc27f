"""The comparison's pictures: one line per variant (median over seeds), a band for min-max.

The metric's y axis is zoomed on where the runs end (see :func:`zoom`): on MNIST-1D the
variants finish between 90% and 94% after starting at 10%, and an axis from 0 to 1 would
squash the difference that the comparison is about into a few pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nnopt import atomic  # noqa: E402
from nnopt.experiments.stats import RunRecord  # noqa: E402
from nnopt.names import metric_label  # noqa: E402

LINESTYLES = ("-", (0, (5, 3)), (0, (1, 2)), (0, (6, 2, 1, 2)))


@dataclass(frozen=True)
class Plot:
    """A written figure and the sentence that says what it shows (the report's caption)."""

    path: Path
    caption: str


def higher_is_better(metric: str) -> bool:
    return metric.endswith("accuracy")


def _aligned(records: list[RunRecord], key: str, x_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows of seeds aligned on evaluation index: x (median across seeds) and y (seeds x evals)."""
    histories = [r.history for r in records if r.history and not r.diverged]
    if not histories:
        return np.empty(0), np.empty((0, 0))
    n = min(len(h) for h in histories)
    y = np.array([[row.get(key, math.nan) for row in h[:n]] for h in histories], dtype=float)
    x = np.median(np.array([[row[x_key] for row in h[:n]] for h in histories], dtype=float), 0)
    return x, y


def finals(records: list[RunRecord], key: str) -> list[float]:
    """The last logged value of ``key`` in each run that did not diverge (NaNs dropped)."""
    values = [r.history[-1].get(key, math.nan) for r in records if r.history and not r.diverged]
    return [v for v in values if not math.isnan(v)]


def zoom(
    final_values: list[float], reached: list[float], higher: bool
) -> tuple[float, float] | None:
    """Axis limits around the runs' final values, reaching to the best value any run reached.

    With ``w = max(finals) - min(finals)`` (at least 1% of the largest magnitude, so equal
    finals still get a window): from ``w`` beyond the worst final value to ``w / 4`` beyond the
    best value reached. Accuracies stay inside [0, 1].
    """
    if not final_values:
        return None
    low, high = min(final_values), max(final_values)
    pad = max(high - low, 0.01 * max(abs(low), abs(high), 1e-12))
    if higher:
        top = max([high, *reached]) + pad / 4
        return max(low - pad, 0.0), min(top, 1.0) if high <= 1.0 else top
    return min([low, *reached]) - pad / 4, high + pad


class ExactPercent(matplotlib.ticker.Formatter):
    """Percent labels with the fewest decimals that print every tick exactly: 70% 72% 74%,
    or 93.1% 93.2%, never 70% 73% 75% 78% for ticks 2.5 points apart."""

    def format_ticks(self, values: list[float]) -> list[str]:
        labels: list[str] = []
        for decimals in range(4):
            labels = [f"{v:.{decimals}%}" for v in values]
            printed = [float(label[:-1]) / 100 for label in labels]
            if np.allclose(printed, values, rtol=0, atol=1e-9):
                break
        return labels

    def __call__(self, x: float, pos: int | None = None) -> str:
        return self.format_ticks([x])[0]


def percent_axis(axis: matplotlib.axis.Axis, low: float, high: float) -> None:
    """Tick labels in percent at steps of 1, 2 or 5 times a power of ten (of the fraction), so
    each prints exactly; ``low`` and ``high``, the axis's limits, are the locator's to use."""
    axis.set_major_locator(matplotlib.ticker.MaxNLocator(nbins=6, steps=[1, 2, 5, 10]))
    axis.set_major_formatter(ExactPercent())


def _legend(ax: plt.Axes) -> None:
    entries = len(ax.get_legend_handles_labels()[0])
    if entries > 3:  # a long legend would cover curves: put it beside the axes
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9, frameon=False)
    elif entries:
        ax.legend(loc="best", fontsize=9, framealpha=0.85)


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    atomic.save_figure(path, fig)
    plt.close(fig)
    return path


def plot_metric(
    by_variant: dict[str, list[RunRecord]],
    key: str,
    path: Path,
    *,
    x_key: str = "step",
    log_y: bool = False,
    zoomed: bool = False,
    title: str = "",
    y_label: str = "",
) -> Path:
    """``key`` against ``x_key`` for every variant: median line and min-max band over seeds.

    ``zoomed``: the y axis spans :func:`zoom` of the final values (earlier values leave it).
    """
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=110)
    reached: list[float] = []
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
        ax.plot(x, np.nanmedian(y, 0), color=color, lw=2, label=label)
        if seeds > 1:
            ax.fill_between(x, np.nanmin(y, 0), np.nanmax(y, 0), color=color, alpha=0.18, lw=0)
        reached += [float(v) for v in np.nanmedian(y, 0) if not math.isnan(v)]
    window = None
    if zoomed:
        higher = higher_is_better(key)
        best = [(max if higher else min)(reached)] if reached else []
        window = zoom([v for rs in by_variant.values() for v in finals(rs, key)], best, higher)
    if window is not None:
        ax.set_ylim(*window)
    if log_y:
        ax.set_yscale("log")
    if higher_is_better(key):
        percent_axis(ax.yaxis, *ax.get_ylim())
    ax.set_xlabel("wall time (s)" if x_key == "time" else "optimizer step")
    y_label = y_label or metric_label(key)
    ax.set_ylabel(y_label)
    ax.set_title(title or y_label, fontsize=11)
    ax.grid(True, alpha=0.3, which="both")
    _legend(ax)
    return _save(fig, path)


def lr_by_step(record: RunRecord) -> np.ndarray | None:
    """The lr of every step of a run (index 0: step 1), not only at its evaluations: the
    schedule of its recipe.toml times the plateau's scale, which each evaluation row gives
    (a row's lr is its step's, set by the previous evaluation). None without a recipe.toml."""
    from nnopt.recipe import Recipe

    saved = Path(record.run_dir) / "recipe.toml"
    if not record.run_dir or not saved.is_file() or not record.history:
        return None
    recipe = Recipe.load(saved)
    total = int(record.summary.get("total_steps") or record.history[-1]["step"])
    schedule = recipe.lr_schedule(total)
    base = np.array([schedule(k) if callable(schedule) else schedule for k in range(total)])
    scale, lrs, start = 1.0, np.empty(0), 0
    for row in record.history:
        end = int(row["step"])
        if base[end - 1] > 0:
            scale = row["lr"] / base[end - 1]
        lrs = np.concatenate([lrs, base[start:end] * scale])
        start = end
    return lrs


def _lr_curve(records: list[RunRecord]) -> tuple[np.ndarray, np.ndarray]:
    """Steps and the median over seeds of their lr at every step (else at evaluations)."""
    runs = [lr_by_step(r) for r in records if r.history and not r.diverged]
    if not runs or any(run is None for run in runs):
        x, y = _aligned(records, "lr", "step")
        return x, np.nanmedian(y, 0) if y.size else y
    n = min(len(run) for run in runs)  # type: ignore[arg-type]
    return np.arange(1, n + 1), np.median(np.array([run[:n] for run in runs]), 0)  # type: ignore[index]


def _distinct_curves(
    by_variant: dict[str, list[RunRecord]], key: str
) -> list[tuple[list[str], np.ndarray, np.ndarray]]:
    """One (variants, x, y) per distinct median curve: equal curves share one line and label.
    The lr is drawn at every step (:func:`lr_by_step`), so a schedule's changes all show."""
    curves: list[tuple[list[str], np.ndarray, np.ndarray]] = []
    for variant, records in by_variant.items():
        if key == "lr":
            x, median = _lr_curve(records)
        else:
            x, y = _aligned(records, key, "step")
            median = np.nanmedian(y, 0) if y.size else y
        if median.size == 0:
            continue
        for names, cx, cy in curves:
            if cx.shape == x.shape and np.allclose(cx, x) and np.allclose(cy, median, rtol=1e-9):
                names.append(variant)
                break
        else:
            curves.append(([variant], x, median))
    return curves


def plot_lr(by_variant: dict[str, list[RunRecord]], path: Path) -> Path:
    """The learning rate of each variant by step; variants with the same schedule share a line.

    Peaks within 10x of each other: a linear axis (a cosine's shape as it is). Further apart:
    a log axis reaching 1/10,000 of the smallest peak (it was 1/100, and the last tenth of a
    cosine fell off the plot); only a decay's very end, towards 0, leaves it.
    """
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=110)
    curves = _distinct_curves(by_variant, "lr")
    peaks = [float(np.nanmax(y)) for _, _, y in curves if np.isfinite(y).any()]
    for i, (names, x, y) in enumerate(curves):
        # " / ": variant names made by --vary already hold commas ("sgd,1e-3").
        ax.plot(x, y, color=f"C{i % 10}", lw=2, label=" / ".join(names))
    log = bool(peaks) and max(peaks) > 10 * min(peaks) and min(peaks) > 0
    if log:
        lowest = min(float(np.nanmin(np.where(y > 0, y, np.inf))) for _, _, y in curves)
        ax.set_yscale("log")
        ax.set_ylim(max(min(peaks) / 1e4, lowest / 2), max(peaks) * 1.5)
    elif peaks:
        ax.set_ylim(0, max(peaks) * 1.05)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate" + (" (log scale)" if log else ""))
    ax.set_title(
        "learning rate by step (variants with the same schedule share a line)", fontsize=11
    )
    ax.grid(True, alpha=0.3, which="both")
    _legend(ax)
    return _save(fig, path)
