"""The tuning space of ``nnopt compare --tune``: its dimensions, and the points drawn in it.

A dimension is declared once for every variant, ``KEY=log:LO:HI`` (log-uniform),
``KEY=LO:HI`` (uniform) or ``KEY=V1,V2,...`` (a list), e.g. ``optimizer.lr=log:1e-4:1``,
``schedule.warmup=0:0.1``, ``optimizer.betas[1]=0.95,0.99,0.999``. A recipe's ``[tune]`` table
may narrow a dimension for its variant (same syntax, inside the declared range).

Points are drawn in the unit cube and mapped into each variant's own ranges, so every variant
sees the same points: AlgoPerf gives every submission the same trials from a space declared up
front (Dahl et al. 2023), and DeepOBS tunes the lr on a log grid (Schneider et al. 2019). With
one dimension the points are that grid, ends included; with more, a scrambled Sobol sequence
(``scipy.stats.qmc``), which covers the cube more evenly than random points of the same count.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from nnopt.errors import RecipeError, UsageError
from nnopt.recipe import Recipe

FLAG = "--tune"
SOBOL_SEED = 0  # the scrambling: fixed, so a rerun (and every variant) draws the same points
_INDEX = re.compile(r"^(?P<key>[^\[\]]+)\[(?P<index>\d+)\]$")  # optimizer.betas[1]


@dataclass(frozen=True)
class Dimension:
    """One tuned field: ``kind`` is "log", "linear" or "list" (``choices``)."""

    key: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    choices: tuple[int | float | str, ...] = ()

    @property
    def spec(self) -> str:
        """The declaration it was read from (what a resume compares)."""
        if self.kind == "list":
            return f"{self.key}={','.join(str(c) for c in self.choices)}"
        prefix = "log:" if self.kind == "log" else ""
        return f"{self.key}={prefix}{self.low:g}:{self.high:g}"

    def value(self, u: float) -> int | float | str:
        """The point ``u`` in [0, 1] of this dimension."""
        if self.kind == "list":
            return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]
        if self.kind == "log":
            value = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            value = self.low + u * (self.high - self.low)
        return float(f"{value:.10g}")  # 1e-3, not 0.0010000000000000002, in the run's recipe

    def contains(self, other: Dimension) -> bool:
        if self.kind == "list":
            return other.kind == "list" and set(other.choices) <= set(self.choices)
        return other.kind == self.kind and self.low <= other.low and other.high <= self.high


def on_edge(space: list[Dimension], point: dict[str, int | float | str]) -> list[str]:
    """The ranged dimensions whose chosen value is an end of its range: the best may lie
    beyond it, so the range should be wider (a list has no beyond)."""
    edges = []
    for dim in space:
        value = point.get(dim.key)
        if dim.kind == "list" or not isinstance(value, int | float):
            continue
        if any(math.isclose(value, end, rel_tol=1e-6) for end in (dim.low, dim.high)):
            edges.append(f"{dim.key}={value:g}")
    return edges


def _number(text: str, spec: str, flag: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"{flag} {spec}: {text!r} is not a number") from None


def _choice(text: str) -> int | float | str:
    """A list value as TOML would read it: 32 an integer, 0.99 a float, adam a string."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_dimension(spec: str, flag: str = FLAG) -> Dimension:
    """``KEY=log:LO:HI``, ``KEY=LO:HI`` or ``KEY=V1,V2``; one line naming ``flag`` if bad."""
    key, sep, text = (part.strip() for part in spec.partition("="))
    form = "expected KEY=log:LO:HI, KEY=LO:HI or KEY=V1,V2,..."
    if not sep or not key or not text:
        raise UsageError(f"{flag} {spec!r}: {form}")
    if "," in text or ":" not in text:
        choices = tuple(c.strip() for c in text.split(",") if c.strip())
        if not choices:
            raise UsageError(f"{flag} {spec}: the list of values is empty")
        return Dimension(key, "list", choices=tuple(_choice(c) for c in choices))
    parts = text.split(":")
    log = parts[0] == "log"
    bounds = parts[1:] if log else parts
    if len(bounds) != 2:
        raise UsageError(f"{flag} {spec}: {form}")
    low, high = (_number(b, spec, flag) for b in bounds)
    if not low < high:
        what = "empty" if low == high else "inverted"
        raise UsageError(f"{flag} {spec}: the range is {what} (need LO < HI)")
    if log and low <= 0:
        raise UsageError(f"{flag} {spec}: a log range needs LO > 0")
    return Dimension(key, "log" if log else "linear", low, high)


def parse_space(specs: list[str]) -> list[Dimension]:
    space = [parse_dimension(spec) for spec in specs]
    keys = [d.key for d in space]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise UsageError(f"{FLAG}: {', '.join(twice)} is declared more than once")
    return space


def narrowed(space: list[Dimension], recipe: Recipe, label: str) -> list[Dimension]:
    """The space as the variant's ``[tune]`` table narrows it (inside the declared ranges)."""
    own = recipe.tune or {}
    declared = {d.key: d for d in space}
    out = []
    for key in own:
        if key not in declared:
            raise UsageError(
                f"{label}: [tune] {key} is not a dimension of {FLAG} "
                f"({', '.join(declared) or 'none declared'})"
            )
    for dim in space:
        if dim.key not in own:
            out.append(dim)
            continue
        mine = parse_dimension(f"{dim.key}={own[dim.key]}", f"{label}: [tune]")
        if not dim.contains(mine):
            raise UsageError(f"{label}: [tune] {mine.spec} is not inside {FLAG} {dim.spec}")
        out.append(mine)
    return out


def unit_points(dimensions: int, budget: int) -> np.ndarray:
    """``budget`` points of the unit cube: a grid, ends included, for one dimension; else the
    first ``budget`` points of a scrambled Sobol sequence (the same on every call)."""
    if budget < 1:
        raise UsageError(f"--budget must be >= 1, got {budget}")
    if dimensions == 1:
        grid = np.linspace(0.0, 1.0, budget) if budget > 1 else np.array([0.5])
        return grid[:, None]
    import warnings

    from scipy.stats import qmc

    sampler = qmc.Sobol(d=dimensions, scramble=True, seed=SOBOL_SEED)
    with warnings.catch_warnings():  # a budget that is not a power of 2 is the user's choice
        warnings.simplefilter("ignore", UserWarning)
        return sampler.random(budget)


def overrides(recipe: Recipe, point: dict[str, int | float | str]) -> list[str]:
    """``KEY=VALUE`` overrides setting a point; ``KEY[i]`` replaces item i of a list field."""
    out = []
    for key, value in point.items():
        match = _INDEX.match(key)
        if match is None:
            out.append(f"{key}={_toml(value)}")
            continue
        items = list(_current(recipe, match["key"]))
        items[int(match["index"])] = value
        out.append(f"{match['key']}=[{', '.join(_toml(v) for v in items)}]")
    return out


def _toml(value: int | float | str) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _current(recipe: Recipe, key: str) -> list[int | float | str]:
    """A list field's value in the recipe, or the optimizer's default for it."""
    section, _, name = key.partition(".")
    value = getattr(getattr(recipe, section, None), name, None)
    if value is None and section == "optimizer":
        value = recipe.optimizer.resolved()[0].options().get(name)
    if not isinstance(value, list | tuple):
        raise UsageError(f"{FLAG} {key}[i]: {key} is not a list field of {recipe.name}")
    return list(value)


def check(space: list[Dimension], recipe: Recipe, label: str) -> None:
    """Every dimension exists for this variant: one line naming ``--tune`` and the field."""
    for dim in space:
        indexed = _INDEX.match(dim.key)
        key = indexed["key"] if indexed else dim.key
        section, _, name = key.partition(".")
        if section == "optimizer" and name and not recipe.optimizer.applies(name):
            raise UsageError(
                f"{FLAG} {dim.key}: optimizer {recipe.optimizer.name!r} ({label}) has no {name}"
            )
        try:
            recipe.with_overrides(overrides(recipe, {dim.key: dim.value(0.5)}))
        except RecipeError as exc:
            first = str(exc).splitlines()[0]
            raise UsageError(f"{FLAG} {dim.key} ({label}): {first}") from None
