"""``--set KEY=VALUE`` overrides applied to a recipe's raw (as-written) dict.

VALUE is read as a TOML value when it is one (``0.03``, ``true``, ``[64, 32]``, ``"text"``),
otherwise taken as a bare string (``adam``, ``data/train.csv``).
"""

from __future__ import annotations

import copy
import tomllib
import types
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from nnopt.errors import RecipeError
from nnopt.recipe.errors import section_type, unknown_key
from nnopt.recipe.schema import APPLIES_TO, OPTIMIZERS, OptimizerSpec, optimizer_keys

FORM = "expected KEY=VALUE, e.g. optimizer.lr=0.03 or model.hidden=[64,32]"
_REMOVE = ("none", "off")  # `--set plateau=none` removes an optional table


def parse_value(raw: str) -> Any:
    """``raw`` as a TOML value if it parses as exactly one, else the bare string."""
    if "\n" not in raw:
        try:
            doc = tomllib.loads(f"v = {raw}")
        except tomllib.TOMLDecodeError:
            pass
        else:
            if list(doc) == ["v"]:
                return doc["v"]
    return raw


def parse_override(text: str) -> tuple[list[str], str]:
    """``"optimizer.lr=0.03"`` -> ``(["optimizer", "lr"], "0.03")``."""
    key, sep, raw = text.partition("=")
    parts = [p.strip() for p in key.split(".")]
    if not sep:
        raise RecipeError(f"override {text!r} has no '=': {FORM}")
    if not all(parts):
        raise RecipeError(f"override {text!r} has an empty key: {FORM}")
    if not raw.strip():
        raise RecipeError(f"override {text!r} has no value: {FORM}")
    return parts, raw.strip()


def resolve_path(root: type[BaseModel], parts: list[str], text: str) -> FieldInfo | None:
    """The field a dotted path names; None for a free key (``data.options.NAME``).

    Raises RecipeError naming the path and the keys allowed where it went wrong.
    """
    model = root
    for i, part in enumerate(parts):
        where = ".".join(parts[:i]) or "recipe"
        if part not in model.model_fields:
            raise RecipeError(f"override {text!r}: " + unknown_key(where, part, model.model_fields))
        info = model.model_fields[part]
        rest = parts[i + 1 :]
        if not rest:
            return info
        section = section_type(info.annotation)
        if section is not None:
            model = section
        elif typing.get_origin(info.annotation) is dict and len(rest) == 1:
            return None
        else:
            raise RecipeError(
                f"override {text!r}: {'.'.join(parts[: i + 1])} is a value, not a table"
            )
    return None  # unreachable: parts is never empty


def _wants_string(info: FieldInfo | None) -> bool:
    """Whether a field holds text (str or a choice of strings), so ``1e3`` stays ``"1e3"``."""
    if info is None:
        return False
    ann = info.annotation
    if typing.get_origin(ann) in (typing.Union, types.UnionType):  # str | None: an optional text
        kept = [a for a in typing.get_args(ann) if a is not type(None)]
        ann = kept[0] if len(kept) == 1 else ann
    args = typing.get_args(ann) if typing.get_origin(ann) is typing.Literal else ()
    return ann is str or (bool(args) and all(isinstance(a, str) for a in args))


def apply_overrides(
    root: type[BaseModel], raw: dict[str, Any], overrides: Iterable[str]
) -> dict[str, Any]:
    """A copy of ``raw`` with every override applied, ready to validate again.

    Setting ``train.steps`` drops ``train.epochs`` (and the reverse); changing
    ``optimizer.name`` drops the [optimizer] options the new optimizer does not have, unless
    they are set by these same overrides.
    """
    out = copy.deepcopy(raw)
    touched: set[str] = set()
    for text in overrides:
        parts, text_value = parse_override(text)
        chosen = (out.get("optimizer") or {}).get("name")
        if parts[0] == "optimizer" and parts[1:2] and parts[1] not in OptimizerSpec.model_fields:
            known = optimizer_keys(chosen) if chosen in OPTIMIZERS else None
            if known:  # named against the chosen optimizer's own keys, as in a file
                raise RecipeError(f"override {text!r}: {unknown_key('optimizer', parts[1], known)}")
        info = resolve_path(root, parts, text)
        value = parse_value(text_value)
        if _wants_string(info) and not isinstance(value, str):
            value = text_value
        node = out
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        if (
            info is not None
            and section_type(info.annotation) is not None
            and not info.is_required()
            and info.default is None
            and (isinstance(value, str) and value.lower() in _REMOVE)
        ):
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
        touched.add(".".join(parts))
    train = out.get("train")
    if isinstance(train, dict):
        for key, other in (("steps", "epochs"), ("epochs", "steps")):
            if f"train.{key}" in touched and f"train.{other}" not in touched:
                train.pop(other, None)
    optimizer = out.get("optimizer")
    if "optimizer.name" in touched and isinstance(optimizer, dict):
        for key, names in APPLIES_TO.items():
            if optimizer.get("name") not in names and f"optimizer.{key}" not in touched:
                optimizer.pop(key, None)
    return out
