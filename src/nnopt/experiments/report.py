"""The comparison table (terminal, Markdown, HTML) and the report files."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from nnopt import atomic
from nnopt.experiments.plots import Plot
from nnopt.experiments.stats import Spread, VariantStats
from nnopt.wording import counted


def _fmt(value: float, metric: str) -> str:
    return f"{value:.2%}" if metric.endswith("accuracy") else f"{value:.4g}"


def _spread(spread: Spread | None, metric: str) -> str:
    if spread is None:
        return "-"
    return (
        f"{_fmt(spread.median, metric)} [{_fmt(spread.low, metric)}, {_fmt(spread.high, metric)}]"
    )


def _mean_std(spread: Spread | None, metric: str) -> str:
    if spread is None:
        return "-"
    return f"{_fmt(spread.mean, metric)} ± {_fmt(spread.std, metric)}"


def table_rows(stats: list[VariantStats], target: float | None) -> tuple[list[str], list[list]]:
    """Header and rows of the comparison table, as strings."""
    metric = stats[0].metric if stats else "val_accuracy"
    label = stats[0].label if stats else metric
    header = [
        "variant",
        f"final {label} median [min, max]",
        "final mean ± std",
        f"best {label} median",
        "final train loss",
        "wall time (s)",
        "diverged",
    ]
    if target is not None:
        header += [f"steps to {target:g}", f"time to {target:g} (s)"]
    rows = []
    for s in stats:
        row = [
            s.variant,
            _spread(s.final, metric),
            _mean_std(s.final, metric),
            _fmt(s.best.median, metric) if s.best else "-",
            f"{s.train_loss.median:.4g}" if s.train_loss else "-",
            f"{s.wall_time.median:.1f}" if s.wall_time else "-",
            f"{s.diverged}/{s.runs}",
        ]
        if target is not None:
            reached = f" ({s.reached_target}/{s.runs - s.diverged} reached)"
            row.append(f"{s.steps_to_target.median:.0f}{reached}" if s.steps_to_target else "never")
            row.append(f"{s.time_to_target.median:.1f}" if s.time_to_target else "-")
        rows.append(row)
    return header, rows


def rich_table(stats: list[VariantStats], target: float | None, title: str) -> Table:
    header, rows = table_rows(stats, target)
    table = Table(title=title)
    # Escaped: rich would take "[min, max]" in a header for a style tag and drop it.
    for i, name in enumerate(header):
        table.add_column(escape(name), justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*map(escape, row))
    return table


def markdown_table(stats: list[VariantStats], target: float | None) -> str:
    header, rows = table_rows(stats, target)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_reports(
    out: Path,
    title: str,
    stats: list[VariantStats],
    target: float | None,
    plots: list[Plot],
    recipes: dict[str, str],
    seeds: int,
) -> tuple[Path, Path]:
    """report.md (plots linked) and a self-contained report.html (plots embedded)."""
    intro = (
        f"{counted(len(stats), 'variant')} x {counted(seeds, 'seed')}. Each cell is the median "
        "over seeds with [min, max]; diverged runs are counted apart, not averaged in. The "
        "same seed gives the same data split and initial weights in every variant."
    )
    md = [f"# {title}", "", intro, "", markdown_table(stats, target), ""]
    for plot in plots:
        md += [f"![{plot.caption}]({plot.path.relative_to(out).as_posix()})", "", plot.caption, ""]
    md += ["## Recipes", ""]
    for variant, text in recipes.items():
        md += [f"### {variant}", "", "```toml", text.rstrip(), "```", ""]
    md_path = out / "report.md"
    atomic.write_text(md_path, "\n".join(md))

    header, rows = table_rows(stats, target)
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    images = "".join(
        f'<figure><img alt="{html.escape(plot.caption)}" src="data:image/png;base64,'
        f'{base64.b64encode(plot.path.read_bytes()).decode()}"><figcaption>'
        f"{html.escape(plot.caption)}</figcaption></figure>"
        for plot in plots
    )
    recipe_html = "".join(
        f"<h3>{html.escape(v)}</h3><pre>{html.escape(t)}</pre>" for v, t in recipes.items()
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
th {{ background: #f3f3f3; }}
figure {{ display: inline-block; vertical-align: top; margin: 0.5rem; max-width: 520px; }}
img {{ max-width: 520px; }} figcaption {{ font-size: 0.85rem; color: #444; }}
pre {{ background: #f7f7f7; padding: 0.6rem; overflow-x: auto; }}
</style></head><body>
<h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>
<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>
{images}
<h2>Recipes</h2>{recipe_html}
</body></html>
"""
    html_path = out / "report.html"
    atomic.write_text(html_path, page)
    return md_path, html_path
