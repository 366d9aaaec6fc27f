"""The suite's outputs: the performance profile figure, the score table and one table per
workload (suite.md, suite.json), each number with the split it comes from (validation)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from nnopt import atomic
from nnopt.experiments import profile
from nnopt.experiments.plots import _legend, _save, plt
from nnopt.experiments.suite import SuiteResult
from nnopt.experiments.tune_plots import MARKERS
from nnopt.experiments.tune_report import table


def profile_plot(result: SuiteResult, path: Path) -> Path:
    """Each optimizer's fraction of workloads within tau of the best, tau from 1 to 4."""
    taus = np.linspace(1.0, profile.MAX_RATIO, 301)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ranked = sorted(result.scores, key=lambda n: -result.scores[n])
    for n, name in enumerate(ranked):
        ax.step(taus, profile.profile(result.ratios, name, taus), where="post", lw=1.4,
                label=f"{name} ({result.scores[name]:.2f})", marker=MARKERS[n % 10],
                markevery=60, ms=4)  # fmt: skip
    ax.set_xlabel("tau: time to target over the best optimizer's")
    ax.set_ylabel("fraction of workloads within tau")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    _legend(ax)
    return _save(fig, path)


def score_lines(result: SuiteResult) -> list[str]:
    profiled = len(result.ratios)
    lines = [
        "| optimizer | score | workloads within 4x of the best | best on |",
        "|---|---|---|---|",
    ]
    for name in sorted(result.scores, key=lambda n: -result.scores[n]):
        within = sum(math.isfinite(row.get(name, math.inf)) for row in result.ratios.values())
        best = sum(row.get(name) == 1.0 for row in result.ratios.values())
        lines.append(f"| {name} | {result.scores[name]:.3f} | {within}/{profiled} | {best} |")
    return lines


def write(result: SuiteResult, out: Path, command: str, wall: float) -> dict[str, Path]:
    """suite.md, suite.json and plots/performance_profile.png in ``out``."""
    s = result.settings
    md = [f"# nnopt bench-suite ({s.name})", "", f"`{command}`: {wall / 60:.1f} min.", "",
          f"Every optimizer: {s.budget} trials of `{' '.join(s.space)}` per workload, scored on "
          f"a validation split carved from the training data; the chosen lr then run on "
          f"{s.seeds} evaluation seed(s). Time to target: the median over those runs; a run "
          f"that never reaches the target, or takes more than {profile.MAX_RATIO:g}x the best "
          "optimizer's median, is a failure. Score: the normalized area under the profile "
          "(1: best everywhere).", ""]  # fmt: skip
    files: dict[str, Path] = {}
    if result.ratios:
        plot = profile_plot(result, out / "plots" / "performance_profile.png")
        files["profile"] = plot
        md += [*score_lines(result), "", f"![performance profile]({plot.relative_to(out)})", ""]
    for workload in result.workloads:
        metric = result.metrics[workload.name]
        target = "not set" if workload.target is None else f"{workload.target:.4g}"
        header, cells = table(result.rows[workload.name], metric, "validation", workload.target)
        md += [f"## {workload.name} (target {metric} {target})", "",
               "| " + " | ".join(header) + " |", "|---" * len(header) + "|",
               *("| " + " | ".join(c) + " |" for c in cells), ""]  # fmt: skip
        for name, why in result.skipped.get(workload.name, {}).items():
            md += [f"{name}: cannot train this model ({why}); a failure here.", ""]
    files["suite.md"] = out / "suite.md"
    atomic.write_text(files["suite.md"], "\n".join(md))
    payload = {
        "settings": s.__dict__, "scores": result.scores, "ratios": result.ratios,
        "targets": {w.name: w.target for w in result.workloads}, "wall_time": wall,
    }  # fmt: skip
    files["suite.json"] = out / "suite.json"
    atomic.write_text(files["suite.json"], json.dumps(payload, indent=2, default=str) + "\n")
    return files
