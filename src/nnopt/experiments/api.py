"""``nnopt.compare`` and ``nnopt.lr_find`` from Python: the commands' work on your own
objects, returning results that hold the numbers and draw their plots (for notebooks).

The command line (``nnopt compare``, ``nnopt lr-find``) calls these same functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnopt.experiments.executors import Executor
from nnopt.experiments.jobs import Event, Passed
from nnopt.experiments.lr_find import LRFindResult
from nnopt.experiments.plots import Plot
from nnopt.experiments.stats import RunRecord, VariantStats
from nnopt.experiments.tuned import TunedComparison


@dataclass
class Comparison:
    """What ``compare`` found: every run's record and each variant's statistics."""

    records: list[RunRecord]
    stats: list[VariantStats]
    metric: str  # what the runs are judged by (their train.metric)
    target: float | None
    out: Path
    recipes: dict[str, str] = field(default_factory=dict)  # variant -> recipe TOML
    plots: list[Plot] = field(default_factory=list)  # drawn by plot()
    files: dict[str, Path] = field(default_factory=dict)  # summary.csv/json, report.md/html

    @property
    def label(self) -> str:
        return self.stats[0].label if self.stats else self.metric

    @property
    def best(self) -> str | None:
        """The variant with the best median final metric (None when every run diverged)."""
        ranked = [s for s in self.stats if s.final is not None]
        if not ranked:
            return None
        higher = self.metric.endswith("accuracy")
        pick = max if higher else min
        return pick(ranked, key=lambda s: s.final.median).variant  # type: ignore[union-attr]

    def table(self) -> str:
        """The comparison table, as Markdown (a notebook shows it as a table)."""
        from nnopt.experiments.report import markdown_table

        return markdown_table(self.stats, self.target)

    def _repr_markdown_(self) -> str:
        return f"**{self.label}** over seeds\n\n{self.table()}"

    def plot(self, out: str | Path | None = None) -> list[Plot]:
        """Draw the figures (final metric per seed, metric by step and by time, training
        loss, lr) into ``out`` (default: the comparison's ``plots/``); their paths."""
        from nnopt.experiments.figures import comparison_plots

        by_variant: dict[str, list[RunRecord]] = {}
        for record in self.records:
            by_variant.setdefault(record.variant, []).append(record)
        self.plots = comparison_plots(by_variant, self.metric, Path(out or self.out / "plots"))
        return self.plots


def compare(
    recipes: Any | Sequence[Any],
    *,
    seeds: int = 3,
    vary: Iterable[str] = (),
    overrides: Iterable[str] = (),
    target: float | None = None,
    out: str | Path | None = None,
    jobs: int = 1,
    model: Any = None,
    data: Any = None,
    report: bool = True,
    on_event: Callable[[Event], None] | None = None,
    tune: Iterable[str] = (),
    budget: int = 0,
    executor: str | Executor = "local",
) -> Comparison | TunedComparison:
    """Run every recipe (or every ``vary`` variant of one) over ``seeds`` seeds.

    ``recipes``: one or a list of recipes (Recipe, dict of tables, TOML text or a path).
    ``vary`` and ``overrides`` are ``"KEY=V1,V2"`` / ``"KEY=VALUE"`` as ``--vary`` / ``--set``.
    ``model``: an ``nn.Module`` (each run trains its own copy, so every seed starts from its
    weights) or a function returning one (called under each run's seed). ``data``: what a
    data factory returns. Runs already finished in ``out`` are picked up, not run again.
    ``report=True`` writes summary.csv/json, the plots and report.md/html to ``out``.
    ``tune`` (``"KEY=log:LO:HI"``, as ``--tune``) with ``budget`` trials per variant: each
    variant at its own best point, tested on ``seeds`` fresh seeds (a ``TunedComparison``).
    ``executor``: where the runs execute, "local" (``jobs`` processes) or "ray" (one Ray
    task per run; ``experiments.executors.make_executor("ray", address=..., cpus_per_run=...)``
    for a cluster's address and the cores of each run).
    """
    from nnopt import atomic
    from nnopt.experiments.compare import (
        PLAN,
        check_target,
        default_out,
        expand_variants,
        plan_text,
        run_comparison,
        summarize,
        write_summaries,
    )
    from nnopt.experiments.executors import make_executor
    from nnopt.optim.kernels import cpu
    from nnopt.outputs import output_dir
    from nnopt.training.passed import as_recipe

    runner = make_executor(executor) if isinstance(executor, str) else executor
    listed = list(recipes) if isinstance(recipes, list | tuple) else [recipes]
    passed_model, passed_data = model is not None, data is not None
    made = [
        as_recipe(r, model_passed=passed_model, data_passed=passed_data).with_overrides(
            list(overrides)
        )
        for r in listed
    ]
    variants = expand_variants(made, list(vary))
    check_target(target, next(iter(variants.values())), data)  # before any run starts
    tuned = list(tune)
    if tuned or budget:
        from nnopt.experiments.tuning import prepare

        _, tuning_text = prepare(variants, tuned, budget)  # every bad input, before a run
    else:
        tuning_text = ""
    if out is None:
        out = default_out(variants, tuning_text)
    out = output_dir(out)
    atomic.write_text(out / PLAN, plan_text(variants, tuning_text))  # what a rerun matches
    cpu.available()  # build the kernels once, here, not in each of the jobs at once
    passed = Passed(model, data) if passed_model or passed_data else None
    if tuning_text:
        from nnopt.experiments.tuned import tuned_compare

        return tuned_compare(variants, tuned, budget, seeds, out, target=target, jobs=jobs,
                             passed=passed, report=report, on_event=on_event,
                             executor=runner)  # fmt: skip
    records = run_comparison(variants, seeds, out, jobs=jobs, on_event=on_event, passed=passed,
                             executor=runner)  # fmt: skip
    stats, metric = summarize(records, target)
    result = Comparison(records, stats, metric, target, out,
                        {name: r.to_toml() for name, r in variants.items()})  # fmt: skip
    if report:
        from nnopt.experiments.report import write_reports

        result.files = write_summaries(out, records, stats)
        title = f"nnopt compare: {', '.join(variants)}"
        md, html = write_reports(out, title, stats, target, result.plot(), result.recipes, seeds)
        result.files.update({"report.md": md, "report.html": html})
    return result


def lr_find(
    recipe: Any,
    *,
    model: Any = None,
    data: Any = None,
    min_lr: float = 1e-6,
    max_lr: float = 10.0,
    steps: int = 100,
) -> LRFindResult:
    """The learning-rate range test on a recipe's model and data (or yours: ``model`` is
    swept as given and put back exactly afterwards), over the batches training would see.
    The result holds the sweep and the suggestions; ``result.plot(path)`` draws it. With no
    suggestion (too few points, or a loss that does not fall: a model already trained), a
    warning says why, as does ``result.reason``."""
    from nnopt.data.feed import feed_for
    from nnopt.errors import UsageError
    from nnopt.experiments.lr_find import lr_range_test
    from nnopt.training.build import build_run
    from nnopt.training.firstbatch import check_first_batch
    from nnopt.training.passed import as_recipe

    if not 0 < min_lr < max_lr:
        raise UsageError(f"need 0 < min_lr < max_lr, got {min_lr:g} and {max_lr:g}")
    if steps < 2:
        raise UsageError(f"steps must be >= 2, got {steps}")
    recipe = as_recipe(recipe, model_passed=model is not None, data_passed=data is not None)
    parts = build_run(recipe, model=model, data=data)
    feed = feed_for(parts.dataset, parts.device, parts.batches, recipe.seed, dtype=parts.dtype)

    def first_batch() -> tuple[Any, Any]:
        batch = next(feed.batches_from(0))
        return batch.x, batch.y

    check_first_batch(parts.model, parts.loss_fn, first_batch, recipe.model.factory)
    order = feed.batches_from(0)

    def next_batch(_: int) -> Any:
        batch = next(order)
        return batch.x, batch.y

    result = lr_range_test(parts.model, parts.optimizer, next_batch, parts.loss_fn,
                           min_lr=min_lr, max_lr=max_lr, steps=steps)  # fmt: skip
    result.warn_if_no_suggestion()
    return result
