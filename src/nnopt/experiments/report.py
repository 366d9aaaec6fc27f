"""The comparison table (terminal, Markdown, HTML) and the report files."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nnopt import atomic
from nnopt.experiments.plots import Plot
from nnopt.experiments.recipe_view import recipes_html, recipes_markdown
from nnopt.experiments.stats import Spread, VariantStats
from nnopt.names import format_metric


def _fmt(value: float, metric: str) -> str:
    return format_metric(metric, value)


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


def table_rows(
    stats: list[VariantStats], target: float | None, *, short: bool = False
) -> tuple[list[str], list[list]]:
    """Header and rows of the comparison table, as strings. ``short``: headers without the
    metric's name, for a terminal table whose title names it."""
    metric = stats[0].metric if stats else "val_accuracy"
    label = "" if short else f" {stats[0].label if stats else metric}"
    header = [
        "variant",
        f"final{label} median [min, max]",
        "final mean ± std",
        f"best{label} median",
        "train loss" if short else "final train loss",
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


# The terminal table's columns by their index in table_rows, in the order they go when it is
# too wide for the terminal (report.md keeps them all): wall time, training loss, time to the
# target, mean ± std, best, diverged, steps to the target. The variant and the final
# median [min, max] always stay.
DROP_ORDER = (5, 4, 8, 2, 3, 6, 7)


def rich_table(
    stats: list[VariantStats], target: float | None, title: str, console: Console | None = None
) -> tuple[Table, int]:
    """The comparison table for a terminal: its title names the metric, its headers are
    short, and on a ``console`` too narrow for all its columns (80 wide, say) the least
    telling columns go, rather than every cell wrapping over three lines. Returns the table
    and how many columns were left out."""
    header, rows = table_rows(stats, target, short=True)
    keep = list(range(len(header)))
    for drop in (None, *DROP_ORDER):
        if drop is not None and drop in keep:
            keep.remove(drop)
        table = Table(title=title)
        # Escaped: rich would take "[min, max]" in a header for a style tag and drop it.
        for i in keep:
            table.add_column(escape(header[i]), justify="left" if i == 0 else "right")
        for row in rows:
            table.add_row(*(escape(row[i]) for i in keep))
        if console is None or _unwrapped_width(table, console) <= console.width:
            break
    return table, len(header) - len(keep)


def _unwrapped_width(table: Table, console: Console) -> int:
    """The width a table needs with no cell wrapped (measured as on an unbounded terminal:
    rich clamps a measurement to the console's width)."""
    return console.measure(table, options=console.options.update_width(10**4)).maximum


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
        f"{len(stats)} variants x {seeds} seeds. Each cell is the median over seeds with "
        "[min, max]; diverged runs are counted apart, not averaged in. The same seed gives "
        "the same data split and initial weights in every variant."
    )
    md = [f"# {title}", "", intro, "", markdown_table(stats, target), ""]
    for plot in plots:
        md += [f"![{plot.caption}]({plot.path.relative_to(out).as_posix()})", "", plot.caption, ""]
    md += recipes_markdown(recipes)
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
    recipe_html = recipes_html(recipes)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
th {{ background: #f3f3f3; }}
table.recipes td {{ text-align: left; }}
figure {{ margin: 1.5rem 0; }} figcaption {{ font-size: 0.9rem; color: #444; }}
/* One figure a row at its own size (its text as drawn); a click shows it as large as the
   window allows, another click puts it back. */
img {{ display: block; width: 100%; max-width: 900px; cursor: zoom-in; }}
img.zoomed {{ position: fixed; inset: 0; width: 100vw; height: 100vh; max-width: none;
  object-fit: contain; background: rgba(255, 255, 255, 0.97); cursor: zoom-out; z-index: 9; }}
pre {{ background: #f7f7f7; padding: 0.6rem; overflow-x: auto; }}
</style></head><body>
<h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>
<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>
{images}
{recipe_html}
<script>document.querySelectorAll("img").forEach((i) =>
  i.addEventListener("click", () => i.classList.toggle("zoomed")));</script>
</body></html>
"""
    html_path = out / "report.html"
    atomic.write_text(html_path, page)
    return md_path, html_path
