"""Optimizer step time: nnopt against torch.optim's three modes, another package's
implementation, and the memory floor.

For each optimizer and shape, parameters get gradients once (present and attached, as after
a backward), then only ``opt.step()`` is timed; the median of ``repeats`` steps is reported,
the variants timed in interleaved rounds (``time_steps``) so that they share the machine's
noise.
nnopt runs in its default layout (each parameter its own storage) and with ``flat=True``
(flat buffers); both take the very same call as the others: torch.optim's twin, with
``foreach=False`` (for-loop), ``foreach=True`` and ``fused=True`` where torch has a fused
kernel, and the row's ``reference`` class from another package (its foreach path), where the
table names one and it is installed. An optimizer with neither is timed against the floor
alone: the step's bytes over the bandwidth of ``a.add_(b)`` measured in the same run
(see ``floor.py``).
"""

from __future__ import annotations

import datetime
import gc
import importlib
import inspect
import json
import math
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from nnopt import atomic
from nnopt.bench.choices import DEFAULT, SHAPES
from nnopt.bench.floor import add_bandwidth, floor_seconds
from nnopt.optim import lowbit
from nnopt.optim import table as optimizers_table

Factory = Callable[[list[torch.Tensor]], torch.optim.Optimizer]

# Every optimizer of the table can be timed, with the very same call on every side (the class
# defaults); choices.DEFAULT are the ones timed unless others are asked.
OPTIMIZERS = tuple(row.name for row in optimizers_table.ROWS)

NNOPT = ("nnopt", "nnopt flat=True", "nnopt bf16+int8")
# The compact variant: bfloat16 weights and gradients, Kahan residual, 8-bit moments
# (nnopt.optim.lowbit); timed where the optimizer takes those options.
COMPACT = "nnopt bf16+int8"
COMPACT_OPTIONS = {"state_dtype": "int8", "param_update": "kahan"}
OTHERS = ("torch for-loop", "torch foreach", "torch fused", "reference")
VARIANTS = NNOPT + OTHERS


def _variants(name: str) -> dict[str, Factory]:
    """nnopt's default and flat layouts, torch's three modes and the other package's class,
    where the row has them, all from the same call."""
    row = optimizers_table.row(name)
    kwargs = dict(row.defaults)  # the class defaults otherwise, lr included
    out: dict[str, Factory] = {
        "nnopt": lambda ps: row.cls(ps, **kwargs),
        "nnopt flat=True": lambda ps: row.cls(ps, flat=True, **kwargs),
    }
    try:
        row.cls([torch.zeros(1, 1, requires_grad=True)], **COMPACT_OPTIONS, **kwargs)
    except ValueError:
        pass  # (it reads whole weights: no compact storage)
    else:
        out[COMPACT] = lambda ps: row.cls(_bfloat16(ps), **COMPACT_OPTIONS, **kwargs)
    if row.twin is not None:
        twin = getattr(torch.optim, row.twin)
        modes = inspect.signature(twin).parameters
        if "foreach" not in modes:  # (torch's Muon: one implementation)
            out["torch for-loop"] = lambda ps: twin(ps, **kwargs)
        else:
            out["torch for-loop"] = lambda ps: twin(ps, foreach=False, **kwargs)
            out["torch foreach"] = lambda ps: twin(ps, foreach=True, **kwargs)
        if "fused" in modes:
            out["torch fused"] = lambda ps: twin(ps, fused=True, **kwargs)
    reference = _reference(row.reference)
    if reference is not None:
        out["reference"] = lambda ps: _training(reference(ps, foreach=True, **kwargs))
    return out


def _bfloat16(params: list[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    """The parameters and their gradients turned bfloat16, in place."""
    for p in params:
        grad, p.grad = p.grad, None
        p.data = p.data.to(torch.bfloat16)
        p.grad = None if grad is None else grad.to(torch.bfloat16)
    return params


def _training(opt: Any) -> Any:
    """A schedule-free package's optimizer starts in eval mode and refuses to step there."""
    if callable(getattr(opt, "train", None)):
        opt.train()
    return opt


def _reference(spec: str | None) -> Any:
    """The class ``module:Class`` names, or None if there is none or it is not installed."""
    if spec is None:
        return None
    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:
        return None


def shaped(name: str, rows: torch.Tensor) -> torch.Tensor:
    """``rows`` (tensors x elements) as near-square matrices for an optimizer that takes
    matrices only (torch's Muon refuses vectors), else as they are."""
    row = optimizers_table.row(name)
    try:
        row.cls([torch.zeros(2, requires_grad=True)], **row.defaults)
        return rows
    except ValueError:
        size = rows.shape[1]
        side = max(d for d in range(1, math.isqrt(size) + 1) if size % d == 0)
        return rows.view(rows.shape[0], side, size // side)


def _state_tensors(name: str) -> int:
    """How many tensors shaped like each parameter the optimizer keeps (for the floor)."""
    row = optimizers_table.row(name)
    probe = row.cls([torch.zeros(1, 1, requires_grad=True)], **row.defaults)
    return len(probe.state_keys(probe.param_groups[0]))


@dataclass
class StepResult:
    """Median step times (seconds) of every variant for one optimizer and shape."""

    optimizer: str
    shape: str
    numel: int
    floor: float
    times: dict[str, float] = field(default_factory=dict)
    # bytes held per parameter (weights, gradients, state) of nnopt's variants, and the
    # memory floor of the compact one (it moves 2 x held - gradient bytes per parameter)
    held: dict[str, float] = field(default_factory=dict)
    compact_floor: float | None = None

    @property
    def compact_vs_floor(self) -> float | None:
        """The compact variant's time over its own memory floor."""
        if self.compact_floor is None or COMPACT not in self.times:
            return None
        return self.times[COMPACT] / self.compact_floor

    @property
    def fastest_other(self) -> float | None:
        """The fastest of torch's modes and the other package's class (None: neither)."""
        others = [v for k, v in self.times.items() if k in OTHERS]
        return min(others) if others else None

    @property
    def vs_other(self) -> float | None:
        """nnopt (default layout) time over the fastest other implementation (< 1 is faster)."""
        fastest = self.fastest_other
        return None if fastest is None else self.times["nnopt"] / fastest

    @property
    def vs_floor(self) -> float:
        """nnopt (default layout) time over the memory floor (>= 1 in theory)."""
        return self.times["nnopt"] / self.floor


def draw(count: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial values and gradients for ``count`` tensors of ``size`` elements, as two rows."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(count, size, generator=gen), torch.randn(count, size, generator=gen)


def attached_params(values: torch.Tensor, grads: torch.Tensor) -> list[torch.nn.Parameter]:
    """Fresh parameters copied from the rows of ``values``, each with its row of ``grads``."""
    params = []
    for value, grad in zip(values, grads, strict=True):
        p = torch.nn.Parameter(value.clone())
        p.grad = grad.clone()
        params.append(p)
    return params


def time_steps(
    makes: dict[str, Factory],
    values: torch.Tensor,
    grads: torch.Tensor,
    repeats: int,
    held: dict[str, float] | None = None,
) -> dict[str, float]:
    """Median seconds of ``opt.step()`` for each variant, over fresh copies of ``values``
    with ``grads`` attached; ``held`` (if given) gets nnopt's variants' bytes per parameter.

    The variants are timed side by side: each round times one step of every variant, in an
    order that rotates from round to round, so a burst of load on this shared machine lands
    on all of them alike instead of on whichever variant was running.
    """
    opts = {name: make(attached_params(values, grads)) for name, make in makes.items()}
    for opt in opts.values():
        for _ in range(2):  # warm-up: state allocated, kernels loaded
            opt.step()
    if held is not None:
        for name in NNOPT:
            if name in opts:
                held[name] = lowbit.bytes_per_param(opts[name])
    medians = interleaved_medians({name: opt.step for name, opt in opts.items()}, repeats)
    del opts
    gc.collect()
    return medians


def interleaved_medians(steps: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median seconds of each callable over ``repeats`` rounds, each round calling every one
    once in an order that rotates from round to round (so load lands on all of them alike)."""
    names = list(steps)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            step = steps[name]
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def run(
    optimizers: list[str] | None = None,
    shapes: list[str] | None = None,
    *,
    quick: bool = False,
    repeats: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[StepResult]:
    """Measure every variant; ``quick`` takes fewer repetitions (about 20 s in all)."""
    optimizers = optimizers or list(DEFAULT)
    shapes = shapes or list(SHAPES)
    for name in optimizers:
        if name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    for name in shapes:
        if name not in SHAPES:
            raise ValueError(f"unknown shape {name!r}; choose from {', '.join(SHAPES)}")
    results = []
    for shape in shapes:
        count, size = SHAPES[shape]
        numel = count * size
        reps = repeats or _repeats(numel, quick)
        bandwidth = add_bandwidth(numel, repeats=max(reps, 10))
        values, grads = draw(count, size)
        for name in optimizers:
            floor = floor_seconds(_state_tensors(name), numel, bandwidth)
            result = StepResult(name, shape, numel, floor)
            if progress is not None:
                progress(f"{name} {shape}")
            result.times = time_steps(
                _variants(name), shaped(name, values), shaped(name, grads), reps, result.held
            )
            if COMPACT in result.held:
                moved = 2 * result.held[COMPACT] - 2  # (the bfloat16 gradient is only read)
                result.compact_floor = moved * numel / bandwidth
            results.append(result)
    return results


def _repeats(numel: int, quick: bool) -> int:
    if quick:
        return 3 if numel >= 10_000_000 else 10
    return 21 if numel >= 10_000_000 else 51


def metadata() -> dict[str, Any]:
    """Machine, versions and date of a run."""
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {_cpu_name()}",
        "threads": torch.get_num_threads(),
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def save_json(results: list[StepResult], path: str | Path) -> None:
    """Write the results and the run's metadata as JSON."""
    rows = []
    for r in results:
        row = asdict(r)
        row.update(fastest_other=r.fastest_other, vs_other=r.vs_other, vs_floor=r.vs_floor)
        row.update(compact_vs_floor=r.compact_vs_floor)
        rows.append(row)
    atomic.write_text(path, json.dumps({"meta": metadata(), "results": rows}, indent=2) + "\n")


def table(results: list[StepResult]):
    """A rich Table: milliseconds per step and the two ratios."""
    from rich.table import Table

    out = Table(title="Optimizer step, float32, median ms (lower is better)")
    out.add_column("optimizer")
    out.add_column("shape")
    for variant in VARIANTS:
        out.add_column(variant, justify="right")
    out.add_column("floor", justify="right")
    out.add_column("nnopt / fastest other", justify="right")
    out.add_column("nnopt / floor", justify="right")
    for name in _EXTRA:
        out.add_column(name, justify="right")
    for r in results:
        cells = [f"{r.times[v] * 1e3:.2f}" if v in r.times else "-" for v in VARIANTS]
        out.add_row(
            r.optimizer,
            r.shape,
            *cells,
            f"{r.floor * 1e3:.2f}",
            _ratio(r.vs_other),
            _ratio(r.vs_floor),
            *_extra(r),
        )
    return out


# Bytes held per parameter (weights, gradients, state) by nnopt, and by its compact variant,
# with that variant's time over its own floor and over nnopt's float32 time.
_EXTRA = ("B/param", "B/param bf16+int8", "bf16+int8 / its floor", "bf16+int8 / nnopt")


def _extra(r: StepResult) -> list[str]:
    compact = r.times.get(COMPACT)
    return [
        f"{r.held['nnopt']:.2f}" if "nnopt" in r.held else "-",
        f"{r.held[COMPACT]:.2f}" if COMPACT in r.held else "-",
        _ratio(r.compact_vs_floor),
        _ratio(None if compact is None else compact / r.times["nnopt"]),
    ]


def markdown(results: list[StepResult]) -> str:
    """The same table in Markdown (for RESULTS.md)."""
    head = ["optimizer", "shape", *VARIANTS, "floor", "nnopt / fastest other", "nnopt / floor"]
    head += list(_EXTRA)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cells = [f"{r.times[v] * 1e3:.2f}" if v in r.times else "-" for v in VARIANTS]
        row = [r.optimizer, r.shape, *cells, f"{r.floor * 1e3:.2f}"]
        row += [_ratio(r.vs_other), _ratio(r.vs_floor), *_extra(r)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


__all__ = [
    "DEFAULT",
    "SHAPES",
    "StepResult",
    "markdown",
    "metadata",
    "run",
    "save_json",
    "table",
    "time_steps",
]
