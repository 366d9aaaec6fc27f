"""The tables and files of a tuned comparison: tuned.md, tuned.json and the terminal table.

One table (chosen point, the tuned and the default test metric, the paired difference to the
best with its interval, failures, tuning cost, time to target), one sentence per variant saying
whether it is beaten (only when the interval excludes 0), then every trial's metric.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from nnopt import atomic
from nnopt.experiments.paired import LEVEL
from nnopt.experiments.plots import Plot
from nnopt.experiments.stats import Spread, spread_dict
from nnopt.experiments.tune_summary import TunedRow
from nnopt.names import format_metric, metric_label


def point_text(point: dict[str, int | float | str] | None) -> str:
    if point is None:
        return "(every trial diverged)"
    return ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in point.items()
    )


def spread_text(metric: str, spread: Spread | None) -> str:
    if spread is None:
        return "-"
    low, high = format_metric(metric, spread.low), format_metric(metric, spread.high)
    return f"{format_metric(metric, spread.median)} [{low}, {high}]"


def diff_text(metric: str, row: TunedRow) -> str:
    if row.vs_best is None:
        return "best"
    p = row.vs_best
    if p.n == 0:
        return "-"
    scale, unit = (100.0, " pt") if metric.endswith("accuracy") else (1.0, "")
    return f"{p.mean * scale:+.2f}{unit} [{p.low * scale:+.2f}, {p.high * scale:+.2f}]"


def table(
    rows: list[TunedRow], metric: str, held: str, target: float | None
) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the tuned comparison's table."""
    label = metric_label(metric, held)
    header = ["variant", "chosen point", f"{label}, tuned", f"{label}, defaults",
              f"vs best, paired ({LEVEL:.0%} CI)", "diverged", "tuning cost"]  # fmt: skip
    if target is not None:
        header += ["time to target", "steps to target", "target failures", "score"]
    cells = []
    for row in rows:
        budget = len(row.trials)
        line = [row.variant, point_text(row.point), spread_text(metric, row.tuned),
                spread_text(metric, row.defaults), diff_text(metric, row),
                f"{row.trial_failures}/{budget} trials, {row.run_failures}/{row.runs} runs",
                f"{budget} trials, {row.tuning_cost:.0f} s"]  # fmt: skip
        if target is not None:
            line += [_finite(row.time_to_target, "{:.1f} s"),
                     _finite(row.steps_to_target, "{:.0f}"),
                     f"{row.target_failures}/{row.runs}", f"{row.target_score:.3f}"]  # fmt: skip
        cells.append(line)
    return header, cells


def _finite(value: float, form: str) -> str:
    return form.format(value) if math.isfinite(value) else "not reached"


def verdicts(rows: list[TunedRow], best: str | None) -> list[str]:
    """One sentence per variant: beaten by the best only when the interval excludes 0."""
    out = []
    for row in rows:
        if row.edges:
            edges = ", ".join(row.edges)
            out.append(f"{row.variant}'s chosen point is at the edge of its range ({edges}): "
                       "its best may lie beyond; widen the range.")  # fmt: skip
        p = row.vs_best
        if p is None or p.n == 0:
            continue
        if p.n < 2:
            out.append(f"{best} vs {row.variant}: one paired seed, no interval: cannot tell.")
        elif p.real:
            out.append(f"{best} beats {row.variant}: the {LEVEL:.0%} interval excludes 0.")
        else:
            out.append(f"{best} and {row.variant} cannot be told apart: the interval holds 0.")
    return out


def trial_table(rows: list[TunedRow], metric: str) -> list[str]:
    budget = max((len(r.trials) for r in rows), default=0)
    head = "| variant | " + " | ".join(f"trial {i + 1}" for i in range(budget)) + " |"
    lines = [head, "|---" * (budget + 1) + "|"]
    for row in rows:
        marks = [("**" + format_metric(metric, s) + "**") if i == row.chosen else
                 ("diverged" if math.isnan(s) else format_metric(metric, s))
                 for i, s in enumerate(row.trials)]  # fmt: skip
        lines.append(f"| {row.variant} | " + " | ".join(marks) + " |")
    return lines


def write(
    out: Path, title: str, rows: list[TunedRow], best: str | None, metric: str, held: str,
    target: float | None, plots: list[Plot], protocol: str,
) -> dict[str, Path]:  # fmt: skip
    """tuned.md and tuned.json in ``out``."""
    header, cells = table(rows, metric, held, target)
    md = [f"# {title}", "", protocol, "",
          "| " + " | ".join(header) + " |", "|---" * len(header) + "|",
          *("| " + " | ".join(c) + " |" for c in cells), "", *verdicts(rows, best), "",
          f"## Every trial (final {metric_label(metric, 'validation')}; chosen in bold)", "",
          *trial_table(rows, metric), ""]  # fmt: skip
    for plot in plots:
        md += [f"![{plot.caption}]({plot.path.relative_to(out).as_posix()})", "", plot.caption, ""]
    md_path, json_path = out / "tuned.md", out / "tuned.json"
    atomic.write_text(md_path, "\n".join(md))
    payload = {"metric": metric, "held_out": held, "best": best, "target": target,
               "variants": [_row_dict(r) for r in rows]}  # fmt: skip
    atomic.write_text(json_path, json.dumps(payload, indent=2, default=str) + "\n")
    return {"tuned.md": md_path, "tuned.json": json_path}


def _row_dict(row: TunedRow) -> dict[str, Any]:
    out = {k: v for k, v in row.__dict__.items() if k not in ("tuned", "defaults", "vs_best")}
    out["tuned"], out["defaults"] = spread_dict(row.tuned), spread_dict(row.defaults)
    out["vs_best"] = None if row.vs_best is None else row.vs_best.__dict__
    return out
