"""The lr-sensitivity figure of a tuned comparison: every trial's validation metric against
its lr (or the first tuned dimension), one series per variant, the chosen points marked and
the diverged trials drawn on the bottom edge, so a narrow basin or a cliff shows at a glance."""

from __future__ import annotations

import math
from pathlib import Path

from nnopt.experiments.plots import Plot, _legend, _save, higher_is_better, plt
from nnopt.experiments.tuning import VariantTuning
from nnopt.names import metric_label

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")


def sensitivity_plot(results: list[VariantTuning], metric: str, path: Path) -> Plot | None:
    """Metric against the tuned value; None when the first dimension is not a number."""
    if not results or not results[0].space:
        return None
    dim = next((d for d in results[0].space if d.key == "optimizer.lr"), results[0].space[0])
    if dim.kind == "list" and not all(isinstance(c, int | float) for c in dim.choices):
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    scores = [t.score for r in results for t in r.trials if not math.isnan(t.score)]
    higher = higher_is_better(metric)
    floor = (min(scores) if higher else max(scores)) if scores else 0.0
    shown_diverged = False
    for n, result in enumerate(results):
        xs = [float(t.point[dim.key]) for t in result.trials]
        ys = [t.score for t in result.trials]
        pairs = sorted(zip(xs, ys, strict=True))
        line = ax.plot([x for x, _ in pairs], [y for _, y in pairs], marker=MARKERS[n % 10],
                       ms=4, lw=1, label=result.variant)[0]  # fmt: skip
        bad = [x for x, y in zip(xs, ys, strict=True) if math.isnan(y)]
        if bad:
            label = None if shown_diverged else "diverged (x)"
            ax.scatter(bad, [floor] * len(bad), marker="x", color=line.get_color(), s=40,
                       label=label)  # fmt: skip
            shown_diverged = True
        if result.chosen is not None:
            chosen = result.trials[result.chosen]
            ax.scatter([float(chosen.point[dim.key])], [chosen.score], marker="*", s=180,
                       color=line.get_color(), edgecolor="black", zorder=5)  # fmt: skip
    if dim.kind == "log":
        ax.set_xscale("log")
    ax.set_xlabel(dim.key)
    ax.set_ylabel(f"final {metric_label(metric, 'validation')} (tuning trials)")
    ax.grid(alpha=0.3)
    _legend(ax)
    caption = (
        f"Every tuning trial's final {metric_label(metric, 'validation')} against "
        f"{dim.key}; a star marks each variant's chosen point, an x on the "
        f"{'bottom' if higher else 'top'} edge a diverged trial."
    )
    return Plot(_save(fig, path), caption)
