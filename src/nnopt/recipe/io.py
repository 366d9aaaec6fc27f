"""Reading and writing recipe TOML: parse with tomllib, write a compact, stable layout."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from nnopt.errors import RecipeError


def read_text(path: str | os.PathLike[str]) -> str:
    """A recipe file's text; RecipeError if it is missing or not UTF-8 text."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"recipe file not found: {path}") from None
    except IsADirectoryError:
        raise RecipeError(f"recipe path is a directory, not a file: {path}") from None
    except UnicodeDecodeError as exc:
        raise RecipeError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def parse_toml(text: str, source: str | None = None) -> dict[str, Any]:
    """TOML text as a dict; RecipeError ``SOURCE: invalid TOML: ...`` if it does not parse."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = f"{source}: " if source else ""
        raise RecipeError(f"{where}invalid TOML: {exc}") from None


def format_value(value: Any) -> str:
    """One TOML value on one line (arrays inline, strings escaped by tomli_w)."""
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {format_value(v)}" for k, v in value.items()) + "}"
    return tomli_w.dumps({"v": value}).strip()[len("v = ") :]


def _key(key: str) -> str:
    return tomli_w.dumps({key: 0}).strip()[: -len(" = 0")]


def dump_toml(data: dict[str, Any]) -> str:
    """A recipe dict as TOML: top-level keys first, then one ``[table]`` per section.

    Nested tables (``data.options``) become ``[data.options]``; empty ones are left out.
    """
    lines = [f"{_key(k)} = {format_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for name, table in data.items():
        if isinstance(table, dict):
            _table(lines, [name], table)
    return "\n".join(lines).lstrip("\n") + "\n"


def _table(lines: list[str], path: list[str], table: dict[str, Any]) -> None:
    lines += ["", "[" + ".".join(_key(p) for p in path) + "]"]
    for key, value in table.items():
        if not isinstance(value, dict):
            lines.append(f"{_key(key)} = {format_value(value)}")
    for key, value in table.items():
        if isinstance(value, dict) and value:
            _table(lines, [*path, key], value)
