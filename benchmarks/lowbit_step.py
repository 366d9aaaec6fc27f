"""One AdamW step in low precision: nnopt's ``state_dtype`` / ``param_update`` options against
torch.optim's fp32 AdamW and the 8-bit AdamW of bitsandbytes and torchao, side by side.

    python benchmarks/lowbit_step.py [--rounds 21] [--shapes 8x2.5M 4x256K 500x1000] [--threads N]

(``make setup-lowbit`` installs bitsandbytes and torchao; without them their rows are skipped.)

Gradients are attached once, as after a backward, and only ``opt.step()`` is timed. Each round
times one step of every row in an order that rotates from round to round (a burst of load on
this shared machine lands on all of them alike); the median is printed with the spread
[min-max] of the rounds. Columns besides time:

- bytes held per parameter: weights + gradients + every state tensor (moments, quantization
  scales and maps, Kahan compensation), measured from the tensors themselves; for nnopt by
  ``nnopt.optim.lowbit.bytes_per_param`` where it exists.
- vs floor: the step time over the least time the memory allows, ``bytes moved / bandwidth``,
  the bandwidth measured in the same rounds by 200 MB ``dst.copy_(src)`` and ``dst.add_(src)``
  (see ``Bandwidth``). An AdamW step reads and writes the weights and every state tensor and
  reads the gradient, so bytes moved per parameter = 2 x held - gradient bytes (with the
  actual element sizes: 1 B codes, 2 B bfloat16, ...).

A row whose option does not exist yet (nnopt's low-precision options are new) or whose package
is not installed prints why and is left out, so the script runs at every stage.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

# 8x2.5M: the target, streamed from memory; 4x256K: the same step with every array in
# L3 (the arithmetic's cost without memory's); 500x1000 and 2000x1000: many small tensors
# (the per-tensor cost of Python and calls).
SHAPES = {
    "8x2.5M": (8, 2_500_000),
    "4x256K": (4, 262_144),
    "500x1000": (500, 1000),
    "2000x1000": (2000, 1000),
}
HYPER = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2}
BASELINE = "torch AdamW fused fp32"


class Skip(Exception):
    """A row that cannot run here; its message says why."""


@dataclass
class Row:
    """One optimizer variant: how to build it and the dtype of its parameters."""

    name: str
    make: Callable[[list[torch.nn.Parameter]], Any]
    dtype: torch.dtype = torch.float32
    nnopt: bool = False


def _bnb(params: list[torch.nn.Parameter]) -> Any:
    try:
        import bitsandbytes as bnb
    except ImportError as err:  # the lowbit extra is optional
        raise Skip(f"bitsandbytes not installed ({err}); make setup-lowbit") from err
    return bnb.optim.AdamW8bit(params, **HYPER)


def _torchao(**options: Any) -> Callable[[list[torch.nn.Parameter]], Any]:
    def make(params: list[torch.nn.Parameter]) -> Any:
        try:
            from torchao.optim import AdamW8bit
        except ImportError as err:
            raise Skip(f"torchao not installed ({err}); make setup-lowbit") from err
        return AdamW8bit(params, **HYPER, **options)

    return make


def _nnopt(**options: Any) -> Callable[[list[torch.nn.Parameter]], Any]:
    def make(params: list[torch.nn.Parameter]) -> Any:
        from nnopt.optim import AdamW

        try:
            return AdamW(params, **HYPER, **options)
        except TypeError as err:  # the keyword is not there yet (issue 26 in progress)
            raise Skip(f"nnopt.optim.AdamW({_kwargs(options)}): {err}") from err

    return make


def _kwargs(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in options.items())


ROWS = [
    Row(BASELINE, lambda ps: torch.optim.AdamW(ps, **HYPER, fused=True)),
    Row("torch AdamW foreach fp32", lambda ps: torch.optim.AdamW(ps, **HYPER, foreach=True)),
    Row("bitsandbytes AdamW8bit fp32", _bnb),
    # torchao quantizes only a tensor whose size is a multiple of its block (256): 2,500,000 is
    # not, so its default keeps float32 state there (the state column shows it); block 250
    # divides 2,500,000 and gives the 8-bit step. Its bf16 option rounds stochastically.
    Row("torchao AdamW8bit fp32", _torchao()),
    Row("torchao AdamW8bit fp32 block 250", _torchao(block_size=250)),
    Row(
        "torchao AdamW8bit bf16 + stochastic, block 250",
        _torchao(block_size=250, bf16_stochastic_round=True),
        torch.bfloat16,
    ),
    Row("nnopt AdamW fp32", _nnopt(), nnopt=True),
    Row("nnopt fp32 + int8 state", _nnopt(state_dtype="int8"), nnopt=True),
    Row(
        "nnopt bf16 + kahan + int8 state",
        _nnopt(param_update="kahan", state_dtype="int8"),
        torch.bfloat16,
        nnopt=True,
    ),
    Row(
        "nnopt bf16 + stochastic + int8 state",
        _nnopt(param_update="stochastic", state_dtype="int8"),
        torch.bfloat16,
        nnopt=True,
    ),
    Row(
        "nnopt bf16 + kahan + bf16 state",
        _nnopt(param_update="kahan", state_dtype="bfloat16"),
        torch.bfloat16,
        nnopt=True,
    ),
]


class Bandwidth:
    """Two 200 MB buffers whose copy and in-place add are timed among the steps' rounds, so the
    bandwidth is measured under the same load as the steps.

    ``dst.copy_(src)`` counts read + write, but writing ``dst`` without reading it first costs
    the CPU an extra read of each line (write-allocate) that an optimizer's in-place update
    does not pay; ``dst.add_(src)`` (read both, write dst; nnopt's own floor in
    nnopt.bench.floor) has the step's access pattern. The floor uses the higher of the two, the
    best round of each: noise only ever lowers a bandwidth, so the best is the strictest floor.
    """

    def __init__(self, megabytes: int = 200) -> None:
        self.numel = megabytes * 1_000_000 // 4
        self.src, self.dst = torch.rand(self.numel), torch.rand(self.numel)

    def steps(self) -> dict[str, Callable[[], Any]]:
        return {"copy": lambda: self.dst.copy_(self.src), "add": lambda: self.dst.add_(self.src)}

    def measured(self, times: dict[str, list[float]]) -> dict[str, float]:
        """Bytes per second of each, from the best round (copy 8 B per element, add 12 B)."""
        return {
            "copy": 8 * self.numel / min(times.pop("copy")),
            "add": 12 * self.numel / min(times.pop("add")),
        }


def state_kind(opt: Any) -> str:
    """The dtypes of the state tensors as large as the first parameter (the moments, Kahan
    compensation), so a package that silently keeps float32 state shows it."""
    p = opt.param_groups[0]["params"][0]
    found = [t for t in _tensors(opt.state.get(p, {})) if t.numel() == p.numel()]
    return "+".join(sorted({str(t.dtype).removeprefix("torch.") for t in found})) or "-"


def _tensors(value: Any) -> list[torch.Tensor]:
    """The plain tensors inside a state value: torchao's quantized state is a tensor subclass
    whose bytes live in inner tensors (codes, scale, qmap), so it is flattened."""
    if isinstance(value, torch.Tensor):
        flatten = getattr(value, "__tensor_flatten__", None)
        if flatten is not None and type(value) is not torch.nn.Parameter:
            names, _ = flatten()
            return [t for name in names for t in _tensors(getattr(value, name))]
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _tensors(v)]
    return []


def held_bytes(opt: Any) -> tuple[int, int, int]:
    """(bytes held, gradient bytes, parameters) of an optimizer: its parameters, gradients and
    state tensors, each storage counted once (a quantization map shared by every parameter, as
    bitsandbytes keeps it, or a flat buffer that many views share)."""
    seen: dict[int, int] = {}
    grad_bytes = numel = 0
    for group in opt.param_groups:
        for p in group["params"]:
            numel += p.numel()
            found = [p] + _tensors(opt.state.get(p, {}))
            if p.grad is not None:
                found.append(p.grad)
                grad_bytes += p.grad.untyped_storage().nbytes()
            for t in found:
                storage = t.untyped_storage()
                seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values()), grad_bytes, numel


def bytes_per_param(row: Row, opt: Any) -> tuple[float, float]:
    """(held, moved per step) bytes per parameter; nnopt's own count where it has one."""
    held, grad_bytes, numel = held_bytes(opt)
    per_param = held / numel
    if row.nnopt:
        try:
            from nnopt.optim.lowbit import bytes_per_param as nnopt_bytes
        except ImportError:
            pass  # the fallback above counts the same tensors
        else:
            per_param = float(nnopt_bytes(opt))
    # Everything held is read and written once per step, except the gradient (read only).
    return per_param, 2 * per_param - grad_bytes / numel


def build(rows: list[Row], count: int, size: int) -> dict[str, tuple[Row, Any]]:
    """Each row's optimizer over its own parameters (same values, cast to its dtype), stepped
    twice so that state is allocated and kernels are loaded or compiled (torchao compiles)."""
    gen = torch.Generator().manual_seed(0)
    values = torch.randn(count, size, generator=gen)
    grads = torch.randn(count, size, generator=gen)
    built = {}
    for row in rows:
        params = []
        for value, grad in zip(values, grads, strict=True):
            p = torch.nn.Parameter(value.to(row.dtype, copy=True))
            p.grad = grad.to(row.dtype, copy=True)
            params.append(p)
        try:
            opt = row.make(params)
            for _ in range(2):
                opt.step()
        except Skip as err:
            print(f"skipped {row.name}: {err}")
            continue
        except Exception as err:  # a package that installs but does not step here
            print(f"skipped {row.name}: {type(err).__name__}: {err}")
            continue
        built[row.name] = (row, opt)
    return built


def interleaved(steps: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Seconds of every call over ``rounds`` rounds, the order rotating from round to round."""
    names = list(steps)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - start)
    return times


def run_shape(shape: str, rounds: int) -> None:
    """Time every row on one shape and print its markdown table."""
    count, size = SHAPES[shape]
    built = build(ROWS, count, size)
    meter = Bandwidth()
    steps = {name: opt.step for name, (_, opt) in built.items()} | meter.steps()
    times = interleaved(steps, rounds)
    bandwidths = meter.measured(times)
    bandwidth = max(bandwidths.values())
    base = statistics.median(times[BASELINE]) if BASELINE in times else None
    print(
        f"\n{shape}: {count} tensors x {size:,} = {count * size:,} parameters, one AdamW step; "
        f"bandwidth: copy {bandwidths['copy'] / 1e9:.1f} GB/s, add {bandwidths['add'] / 1e9:.1f}"
        " GB/s (200 MB, best round)"
    )
    print(
        "| optimizer | state | ms/step median [min-max] | vs torch fused fp32 | B/param held "
        "| vs floor: median, best (B moved) |"
    )
    print("|---|---|---|---|---|---|")
    for name, (row, opt) in built.items():
        ts = [t * 1e3 for t in times[name]]
        med = statistics.median(ts)
        held, moved = bytes_per_param(row, opt)
        floor_ms = moved * count * size / bandwidth * 1e3
        speed = f"{med / (base * 1e3):.2f}" if base else "-"
        print(
            f"| {name} | {state_kind(opt)} | {med:.1f} [{min(ts):.1f}-{max(ts):.1f}] | {speed} "
            f"| {held:.2f} | {med / floor_ms:.2f}, {min(ts) / floor_ms:.2f} ({moved:.1f}) |"
        )
    del built, meter
    gc.collect()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21, help="timed rounds (default 21)")
    parser.add_argument(
        "--shapes", nargs="+", default=["8x2.5M"], choices=list(SHAPES), help="default 8x2.5M"
    )
    parser.add_argument(
        "--threads", type=int, help="torch threads (default: torch's own, every core)"
    )
    args = parser.parse_args(argv)
    if args.threads:  # on a loaded machine, 1 thread spares OpenMP's barrier waits
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()  # torch's default: every core, as a training run has
    print(
        f"torch {torch.__version__}, {threads} threads (torch.get_num_threads()), "
        f"{args.rounds} interleaved rounds"
    )
    for shape in args.shapes:
        run_shape(shape, args.rounds)
    print(
        "\nstate: dtype of the moment (and compensation) tensors. vs torch fused fp32: step time"
        " over the baseline's (< 1 is faster). vs floor: the median and the best round's step"
        " time over bytes moved / the higher bandwidth (bytes moved per parameter in brackets);"
        " on a loaded machine the best round is the step's own cost, as the bandwidth's is."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
