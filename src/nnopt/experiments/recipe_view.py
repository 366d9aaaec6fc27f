"""The Recipes section of a comparison's report: what differs between the variants first,
then what they share, without the fields that do nothing for their model or schedule."""

from __future__ import annotations

import html
import json
from typing import Any

from nnopt.recipe import Recipe
from nnopt.recipe.io import dump_toml


def relevant(recipe: Recipe) -> dict[str, Any]:
    """The resolved recipe's tables less the fields its model or schedule does not read
    (``hidden`` for a cnn1d, ``pct_start`` for a cosine...)."""
    data = recipe.to_dict()
    for table, spec in (("model", recipe.model), ("schedule", recipe.schedule)):
        for name in spec.unused_fields():
            data.get(table, {}).pop(name, None)
    return data


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and not prefix:  # a table: its keys as table.key
            out.update(_flat(value, f"{key}."))
        else:
            out[prefix + key] = value
    return out


def _nested(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        table, dot, name = key.partition(".")
        if dot:
            out.setdefault(table, {})[name] = value
        else:
            out[key] = value
    return out


def _text(value: Any) -> str:
    """A value as TOML writes it (a dict, a factory's args, inline)."""
    if value is None:
        return "-"
    if isinstance(value, dict):
        return json.dumps(value)
    return dump_toml({"v": value}).partition("=")[2].strip()


def recipe_sections(recipes: dict[str, str]) -> tuple[list[str], list[list[str]], str]:
    """(header, rows, common): a table of the fields whose values differ between the
    variants (one row per field, one column per variant; "-" where a variant does not use
    it), and the TOML of the rest, the same in every variant."""
    flat = {variant: _flat(relevant(Recipe.loads(text))) for variant, text in recipes.items()}
    keys = list(dict.fromkeys(k for fields in flat.values() for k in fields))
    differ = [k for k in keys if len({_text(fields.get(k)) for fields in flat.values()}) > 1]
    header = ["field", *flat]
    rows = [[k, *(_text(fields.get(k)) for fields in flat.values())] for k in differ]
    first = next(iter(flat.values()), {})
    common = {k: v for k, v in first.items() if k not in differ}
    return header, rows, dump_toml(_nested(common))


COMMON = "The same in every variant (fields their model and schedule do not use left out):"


def recipes_markdown(recipes: dict[str, str]) -> list[str]:
    """The Recipes section of report.md, as lines."""
    header, rows, common = recipe_sections(recipes)
    lines = ["## Recipes", ""]
    if rows:
        lines += ["What differs between the variants:", ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(f"`{c}`" for c in row) + " |" for row in rows]
        lines += [""]
    return [*lines, COMMON, "", "```toml", common.rstrip(), "```", ""]


def recipes_html(recipes: dict[str, str]) -> str:
    """The Recipes section of report.html."""
    header, rows, common = recipe_sections(recipes)
    out = "<h2>Recipes</h2>"
    if rows:
        cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td><code>{html.escape(c)}</code></td>" for c in row) + "</tr>"
            for row in rows
        )
        out += "<p>What differs between the variants:</p>"
        out += (
            f'<table class="recipes"><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>'
        )
    return out + f"<p>{html.escape(COMMON)}</p><pre>{html.escape(common)}</pre>"
