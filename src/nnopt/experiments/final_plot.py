"""Who wins, at a glance: every seed's final metric as a dot, one row per variant.

Rows are sorted best first; a bar marks each variant's median, and the title names the
winner and its margin over the runner-up (difference of medians). The seeds' dots show
whether that margin is larger than the seed-to-seed spread.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nnopt.experiments.plots import (
    _save,
    finals,
    higher_is_better,
    percent_axis,
    plt,
    zoom,
)
from nnopt.experiments.stats import RunRecord
from nnopt.names import metric_label


def _format(value: float, metric: str) -> str:
    return f"{value:.2%}" if higher_is_better(metric) else f"{value:.4g}"


def margin_text(ranked: list[tuple[str, float]], metric: str) -> str:
    """'adam best: 93.60%, +1.70 points over sgd (medians)' from (variant, median), best first."""
    (best, top), rest = ranked[0], ranked[1:]
    head = f"{best} best: {_format(top, metric)}"
    if not rest:
        return head
    runner, second = rest[0]
    if higher_is_better(metric):
        gap = f"+{(top - second) * 100:.2f} points"
    else:
        gap = f"{top - second:+.3g}"
    return f"{head}, {gap} over {runner} (medians)"


def _row_label(variant: str, records: list[RunRecord], values: list[float]) -> str:
    diverged = sum(r.diverged for r in records)
    return f"{variant} (n={len(values)}{f', {diverged} diverged' if diverged else ''})"


def plot_finals(
    by_variant: dict[str, list[RunRecord]], metric: str, path: Path, label: str = ""
) -> Path:
    """The final ``metric`` of every seed (dots) and each variant's median (bar)."""
    higher = higher_is_better(metric)
    values = {v: finals(rs, metric) for v, rs in by_variant.items()}
    medians = {v: float(np.median(vs)) for v, vs in values.items() if vs}
    ranked = sorted(medians.items(), key=lambda kv: kv[1], reverse=higher)
    rows = [v for v, _ in ranked] + [v for v in by_variant if v not in medians]
    fig, ax = plt.subplots(figsize=(7.5, max(3.0, 1.2 + 0.55 * len(rows))), dpi=110)
    for y, variant in enumerate(reversed(rows)):  # best at the top
        color = f"C{list(by_variant).index(variant) % 10}"
        vs = values[variant]
        if not vs:
            ax.text(0.02, y, "every run diverged", transform=ax.get_yaxis_transform(), va="center")
            continue
        # Seeds with equal values would hide each other: spread them a little vertically.
        jitter = np.linspace(-0.12, 0.12, len(vs)) if len(vs) > 1 else np.zeros(1)
        ax.scatter(vs, y + jitter, color=color, s=28, zorder=3, alpha=0.85)
        ax.plot([medians[variant]] * 2, [y - 0.3, y + 0.3], color=color, lw=2.5)
        ax.annotate(
            _format(medians[variant], metric),
            (medians[variant], y + 0.3),
            textcoords="offset points",
            xytext=(0, 2),
            ha="center",
            fontsize=8,
        )
    ax.set_yticks(
        range(len(rows)), [_row_label(v, by_variant[v], values[v]) for v in reversed(rows)]
    )
    ax.set_ylim(-0.6, len(rows) - 0.35)
    window = zoom([v for vs in values.values() for v in vs], [], higher)
    if window is not None:
        low, high = window
        pad = (high - low) * 0.1
        ax.set_xlim(low + pad if higher else low, high if higher else high - pad)
    if higher:
        percent_axis(ax.xaxis, *ax.get_xlim())
    ax.set_xlabel(f"final {label or metric_label(metric)} (dot: one seed; bar: median)")
    ax.set_title(margin_text(ranked, metric) if ranked else "every run diverged", fontsize=11)
    ax.grid(True, axis="x", alpha=0.3)
    return _save(fig, path)
