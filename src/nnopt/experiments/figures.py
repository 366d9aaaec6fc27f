"""The figures of a comparison report, in reading order, each with its caption."""

from __future__ import annotations

from pathlib import Path

from nnopt.experiments.final_plot import plot_finals
from nnopt.experiments.plots import Plot, plot_lr, plot_metric
from nnopt.experiments.stats import RunRecord, held_out_of
from nnopt.names import metric_label


def comparison_plots(by_variant: dict[str, list[RunRecord]], metric: str, out: Path) -> list[Plot]:
    """The final-metric dot plot, the metric by step and by wall time, training loss, lr."""
    out.mkdir(parents=True, exist_ok=True)
    label = metric_label(metric, held_out_of([r for rs in by_variant.values() for r in rs]))
    band = "median over seeds, band from min to max"
    zoomed = "y axis zoomed on the final values, so early evaluations lie below it"
    if not metric.endswith("accuracy"):
        zoomed = "y axis zoomed on the final values, so early evaluations lie above it"
    return [
        Plot(
            plot_finals(by_variant, metric, out / f"final_{metric}.png", label),
            f"Final {label} of every seed (dots) and the median (bar), best variant first.",
        ),
        Plot(
            plot_metric(
                by_variant,
                metric,
                out / f"{metric}_vs_step.png",
                zoomed=True,
                title=f"{label} by step ({band})",
                y_label=label,
            ),
            f"{label.capitalize()} by optimizer step, {band}; {zoomed}.",
        ),
        Plot(
            plot_metric(
                by_variant,
                metric,
                out / f"{metric}_vs_time.png",
                x_key="time",
                zoomed=True,
                title=f"{label} by wall time ({band})",
                y_label=label,
            ),
            f"{label.capitalize()} by wall time (machine-dependent), {band}; {zoomed}.",
        ),
        Plot(
            plot_metric(
                by_variant,
                "train_loss",
                out / "train_loss.png",
                log_y=True,
                title=f"training loss by step ({band})",
            ),
            f"Training loss by step (mean over the steps since the last evaluation, log "
            f"scale), {band}.",
        ),
        Plot(
            plot_lr(by_variant, out / "lr.png"),
            "Learning rate by step; variants with the same schedule share one line.",
        ),
    ]
