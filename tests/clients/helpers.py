"""Shared pieces of the client integration tests (issue 10, point 5).

Every case trains twice with the identical call, once as ``torch.optim.X(...)`` and once as
``nnopt.X(...)``, and compares the numbers. ``rel_diff`` is the measure used throughout:
for each tensor, ``max|nnopt - torch| / max|torch|``; the largest over all tensors.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

import nnopt
from nnopt.optim import table

# The drop-in twins of the optimizer table's rows, and one identical call each (options that
# exercise weight_decay, momentum and the like, so a difference in meaning shows up as a
# number): a new twin in the table fails here (KeyError in KWARGS) until it has its call.
# torch's Muon takes 2-D parameters only and every client model here has biases and norms
# (nnopt.muon_for is the answer for those; tests/test_muon_for.py holds it to torch's Muon).
MATRICES_ONLY = frozenset({"Muon"})
NAMES = tuple(
    dict.fromkeys(row.twin for row in table.ROWS if row.twin and row.twin not in MATRICES_ONLY)
)
KWARGS: dict[str, dict[str, Any]] = {
    "SGD": dict(lr=0.05, momentum=0.9, weight_decay=1e-2),
    "Adam": dict(lr=1e-2, weight_decay=1e-2),
    "AdamW": dict(lr=1e-2, weight_decay=1e-1),
    "Adagrad": dict(lr=5e-2, weight_decay=1e-2),
    "RMSprop": dict(lr=1e-3, momentum=0.5, weight_decay=1e-2),
    "NAdam": dict(lr=1e-2, weight_decay=1e-2, momentum_decay=4e-3),
    "RAdam": dict(lr=1e-2, weight_decay=1e-2),
    "Adafactor": dict(lr=1e-2, weight_decay=1e-2),
}
# float32: one update differs from torch by an ulp or so (fused vs single-tensor kernels);
# a few dozen steps stay well inside this.
RTOL = 1e-5


# NNOPT_CLIENTS_TWIN=torch runs torch.optim in place of nnopt too: a check of the harness
# itself (every case must then pass, and each "bitwise" one be bitwise).
_TWIN = torch.optim if os.environ.get("NNOPT_CLIENTS_TWIN") == "torch" else nnopt


def optimizer_class(lib: str, name: str) -> type[torch.optim.Optimizer]:
    """``torch.optim.<name>`` or ``nnopt.<name>`` (an AttributeError if nnopt lacks it)."""
    return getattr(torch.optim if lib == "torch" else _TWIN, name)


def make_optimizer(lib: str, name: str, params: Iterable[Any], **overrides: Any):
    """The identical call on either library: ``X(params, **KWARGS[name] | overrides)``."""
    return optimizer_class(lib, name)(params, **{**KWARGS[name], **overrides})


def tensors_of(obj: Any) -> dict[str, torch.Tensor]:
    """A name -> detached float32 CPU copy map of a module, a state dict, a list of tensors
    or a list of numbers (losses)."""
    if isinstance(obj, torch.nn.Module):
        obj = dict(obj.named_parameters())
    if isinstance(obj, list | tuple) and all(isinstance(v, float | int) for v in obj):
        obj = {"values": torch.tensor(obj, dtype=torch.float64)}
    items = obj.items() if isinstance(obj, Mapping) else ((str(i), t) for i, t in enumerate(obj))
    out = {}
    for k, t in items:
        if hasattr(t, "full_tensor"):  # DTensor (FSDP2)
            t = t.full_tensor()
        out[k] = t.detach().to("cpu", torch.float32).clone()
    return out


def rel_diff(reference: Any, other: Any) -> float:
    """max over tensors of max|other - reference| / max|reference| (0 when equal)."""
    ref, got = tensors_of(reference), tensors_of(other)
    assert ref.keys() == got.keys(), f"different tensors: {sorted(ref)} vs {sorted(got)}"
    worst = 0.0
    for k, r in ref.items():
        g = got[k]
        assert r.shape == g.shape, f"{k}: shape {tuple(r.shape)} vs {tuple(g.shape)}"
        if not torch.isfinite(g).all():
            return math.inf
        scale = r.abs().max().item() or 1.0
        worst = max(worst, (g - r).abs().max().item() / scale)
    return worst


def bitwise_equal(reference: Any, other: Any) -> bool:
    ref, got = tensors_of(reference), tensors_of(other)
    return ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)


class Recorder:
    """Collects (case, what, value) rows; the suite prints them as a table at the end."""

    rows: list[tuple[str, str, str]] = []

    def __init__(self, case: str) -> None:
        self.case = case

    def close(self, what: str, reference: Any, other: Any, rtol: float = RTOL) -> float:
        """Record and assert ``rel_diff(reference, other) <= rtol``."""
        diff = rel_diff(reference, other)
        self.rows.append((self.case, what, f"{diff:.2e} (tol {rtol:.0e})"))
        assert diff <= rtol, f"{self.case}: {what}: max rel diff {diff:.3e} > {rtol:.0e}"
        return diff

    def bitwise(self, what: str, reference: Any, other: Any) -> None:
        same = bitwise_equal(reference, other)
        diff = rel_diff(reference, other) if not same else 0.0
        self.rows.append((self.case, what, "bitwise" if same else f"NOT bitwise ({diff:.2e})"))
        assert same, f"{self.case}: {what}: not bitwise equal (max rel diff {diff:.3e})"

    def note(self, what: str, value: str) -> None:
        self.rows.append((self.case, what, value))


def seeded(seed: int, build: Callable[[], Any]) -> Any:
    torch.manual_seed(seed)
    return build()
