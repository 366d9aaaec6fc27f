"""Recipe problems as plain lines: pydantic's ValidationError turned into one line per problem.

RecipeError itself lives in :mod:`nnopt.errors` with the other user errors.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from nnopt.errors import RecipeError


def dotted(loc: Sequence[int | str]) -> str:
    """``("model", "hidden", 1)`` -> ``"model.hidden[1]"``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def show(value: Any) -> str:
    """A value as a recipe author wrote it (TOML spelling where it differs from Python)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "a table"
    return str(value)


def section_type(annotation: Any) -> type[BaseModel] | None:
    """The section model behind a field annotation (``Spec`` or ``Spec | None``), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = section_type(arg)
            if found is not None:
                return found
    return None


def field_at(root: type[BaseModel], loc: Sequence[int | str]) -> FieldInfo | None:
    """The field a location points at, or None where it is not a model field."""
    model: type[BaseModel] | None = root
    info = None
    for part in loc:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return None
        info = model.model_fields[part]
        model = section_type(info.annotation)
    return info


def model_at(root: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The section model at a location (``()`` is the root itself)."""
    if not loc:
        return root
    info = field_at(root, loc)
    return section_type(info.annotation) if info is not None else None


def unknown_key(where: str, key: str, allowed: Iterable[str]) -> str:
    """``train: unknown key 'epoch'; allowed: a, b, ...; did you mean 'epochs'?``"""
    names = sorted(allowed)
    text = f"{where}: unknown key {key!r}; allowed: {', '.join(names)}"
    close = difflib.get_close_matches(key, names, n=1)
    return text + (f"; did you mean {close[0]!r}?" if close else "")


_TYPES = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}
_BOUNDS = {
    "greater_than": "gt",
    "greater_than_equal": "ge",
    "less_than": "lt",
    "less_than_equal": "le",
}


def _bounds(root: type[BaseModel], loc: Sequence[int | str]) -> dict[str, Any]:
    """The numeric bounds declared on the field (or list item) at ``loc``."""
    index = len(loc)
    while index and isinstance(loc[index - 1], int):
        index -= 1
    info = field_at(root, loc[:index])
    if info is None:
        return {}
    metadata: list[Any] = list(info.metadata)
    if index < len(loc):  # an item of a list or tuple: its Annotated[...] bounds
        annotation = info.annotation
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if type(None) in typing.get_args(annotation) and len(options) == 1:
            annotation = options[0]  # an optional list: the list's own items
        metadata = [
            meta
            for arg in typing.get_args(annotation)
            if typing.get_origin(arg) is typing.Annotated
            for extra in typing.get_args(arg)[1:]
            for meta in getattr(extra, "metadata", [extra])
        ]
    found: dict[str, Any] = {}
    for item in metadata:
        for name in ("gt", "ge", "lt", "le"):
            if getattr(item, name, None) is not None:
                found[name] = getattr(item, name)
    return found


def _range_text(bounds: dict[str, Any]) -> str:
    """``{"gt": 0, "lt": 1}`` -> ``in (0, 1)``; a single bound -> ``> 0``."""
    low = ("(", bounds["gt"]) if "gt" in bounds else ("[", bounds["ge"]) if "ge" in bounds else None
    high = (
        (")", bounds["lt"]) if "lt" in bounds else ("]", bounds["le"]) if "le" in bounds else None
    )
    if low and high:
        return f"in {low[0]}{low[1]}, {high[1]}{high[0]}"
    op, value = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}, next(iter(bounds.items()))
    return f"{op[value[0]]} {value[1]}"


def describe(error: Any, root: type[BaseModel]) -> str:
    """One pydantic error (a dict from ``ValidationError.errors()``) as one or more lines."""
    kind, loc, ctx = error["type"], tuple(error["loc"]), error.get("ctx") or {}
    path, value = dotted(loc), error.get("input")
    if kind == "recipe":
        return str(ctx["message"])
    if kind == "missing":
        section = model_at(root, loc)
        if section is not None and loc:
            required = [n for n, f in section.model_fields.items() if f.is_required()]
            needs = getattr(section, "NEEDS", None) or ", ".join(required)
            return f"[{path}] table is required (with {needs})"
        return f"{path} is required"
    if kind == "extra_forbidden":
        parent = model_at(root, loc[:-1])
        where = dotted(loc[:-1]) or "recipe"
        return unknown_key(where, str(loc[-1]), parent.model_fields if parent else ())
    if kind == "literal_error":
        allowed = ", ".join(a.strip("'") for a in _split_expected(ctx.get("expected", "")))
        return f"{path} must be one of {allowed}; got {show(value)}"
    if kind in _BOUNDS:
        bounds = _bounds(root, loc) or {_BOUNDS[kind]: ctx.get(_BOUNDS[kind])}
        return f"{path} must be {_range_text(bounds)}, got {show(value)}"
    if kind in _TYPES:
        return f"{path} must be {_TYPES[kind]}, got {show(value)}"
    if kind == "string_too_short":
        return f"{path} must not be empty"
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return f"{path}: {ctx['error']}"
    return f"{path}: {error['msg']}"


def _split_expected(expected: str) -> list[str]:
    """pydantic's ``"'a', 'b' or 'c'"`` -> ``["'a'", "'b'", "'c'"]``."""
    head, _, last = expected.rpartition(" or ")
    return [p.strip() for p in head.split(",") if p.strip()] + [last.strip()]


def from_validation(exc: ValidationError, root: type[BaseModel]) -> RecipeError:
    """A RecipeError with one line per problem in ``exc`` (duplicates dropped)."""
    lines: list[str] = []
    for error in exc.errors():
        for line in describe(error, root).splitlines():
            if line not in lines:
                lines.append(line)
    return RecipeError(lines)
