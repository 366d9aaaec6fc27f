"""``nnopt.compare(..., tune=..., budget=...)``: the tuned comparison's one entry, shared by
the command line and Python (``api.compare`` hands over here when ``tune`` is given)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nnopt.experiments.executors import Executor
from nnopt.experiments.jobs import Event, Passed
from nnopt.experiments.plots import Plot
from nnopt.experiments.tune_summary import TunedRow, summarize
from nnopt.experiments.tuning import VariantTuning
from nnopt.recipe import Recipe


@dataclass
class TunedComparison:
    """What a tuned comparison found: per variant its trials, chosen point and evaluation."""

    results: list[VariantTuning]
    rows: list[TunedRow]
    best: str | None  # the variant with the best median tuned metric
    metric: str
    held_out: str  # the evaluation runs' split ("test" where the data ships one)
    target: float | None
    out: Path
    plots: list[Plot] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)

    def table(self) -> str:
        from nnopt.experiments.tune_report import table

        header, cells = table(self.rows, self.metric, self.held_out, self.target)
        lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
        return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells])

    def _repr_markdown_(self) -> str:
        return self.table()


def protocol_text(budget: int, seeds: int, specs: list[str]) -> str:
    return (
        f"Each variant: {budget} trials of `{' '.join(specs)}` (the same points for all), "
        f"trained on the tuning seed and scored on a validation split carved from the training "
        f"data; the best trial's point then trained on {seeds} evaluation seeds (not the tuning "
        f"seed) and measured on the held-out split named in the table. 'defaults' is the "
        f"recipe's own point on the same seeds. Cells: median [min, max] over seeds; the paired "
        f"difference is the mean over seeds of (variant - best) with a bootstrap interval."
    )


def tuned_compare(
    variants: dict[str, Recipe],
    tune: list[str],
    budget: int,
    seeds: int,
    out: Path,
    *,
    target: float | None,
    jobs: int,
    passed: Passed | None,
    report: bool,
    on_event: Callable[[Event], None] | None,
    executor: Executor | None = None,
) -> TunedComparison:
    from nnopt.experiments import tuning
    from nnopt.experiments.tune_plots import sensitivity_plot
    from nnopt.experiments.tune_report import write

    own, text = tuning.prepare(variants, tune, budget)
    tuning.check_resume(out, text)
    tuning.write_plan(out, text)
    results = tuning.run_tuning(variants, own, budget, seeds, out, jobs=jobs, on_event=on_event,
                                passed=passed, executor=executor)  # fmt: skip
    metric = results[0].trials[0].record.summary.get("metric", "val_accuracy")
    rows, best, held = summarize(results, metric, target)
    found = TunedComparison(results, rows, best, metric, held, target, out)
    if report:
        plot = sensitivity_plot(results, metric, out / "plots" / "lr_sensitivity.png")
        found.plots = [plot] if plot is not None else []
        title = f"nnopt compare --tune: {', '.join(variants)}"
        found.files = write(out, title, rows, best, metric, held, target, found.plots,
                            protocol_text(budget, seeds, tune))  # fmt: skip
    return found
