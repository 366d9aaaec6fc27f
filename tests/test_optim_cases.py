"""Every optimizer row, step for step: against its float64 reference (``optim_cases``), against
its torch twin, and across nnopt's layouts (flat, per tensor) and kernel modes.

Driven only by ``optim_cases.CASES``: a new row is stepped here once it has a case. Each run
feeds identical random gradients to a scalar, a vector, a matrix, a 4-D kernel and an odd
size; the first two option sets of a case run in every layout x kernel mode, the others in
"auto" and "eager" (the two paths users get), to keep the suite's time.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from optim_case import ALL_MODES, build, reference_step, sets_of, variants
from optim_cases import ALL_SETS, CASES, set_id
from optim_helpers import SHAPES, clone_params, compare_trajectories, grad_stream, make_params

from nnopt.optim import table


def test_every_row_has_a_case():
    """A row without a case would pass CI unstepped; a case without a row tests nothing."""
    rows = [row.name for row in table.ROWS]
    assert sorted(set(rows) - set(CASES)) == [], "table rows without a case in optim_cases"
    assert sorted(set(CASES) - set(rows)) == [], "cases naming no table row"


def modes_for(index: int | str) -> tuple[str, ...]:
    return ALL_MODES if index in (0, 1) else ("auto", "eager")


# --- the float64 reference ---------------------------------------------------------------------

REFERENCE_RUNS = ALL_SETS + [(c, "groups") for c in CASES.values()]


@pytest.mark.parametrize("pair", REFERENCE_RUNS, ids=set_id)
def test_matches_float64_reference(pair, steps: int = 30):
    case, index = pair
    sets = sets_of(case, index)
    shapes = case.shapes(SHAPES)
    start = make_params(shapes, dtype=torch.float64)
    options = [case.options(sets[i % len(sets)]) for i in range(len(start))]
    thetas = [p.detach().clone() for p in start]
    states: list[dict] = [{} for _ in start]
    runs = {}
    for name, make in variants(case, sets, modes_for(index)).items():
        params = clone_params(start)
        runs[name] = (make(params), params)
    for t, grads in enumerate(grad_stream(shapes, steps, dtype=torch.float64), start=1):
        thetas = [
            reference_step(case, th, g, s, o, t)
            for th, g, s, o in zip(thetas, grads, states, options, strict=True)
        ]
        for name, (opt, params) in runs.items():
            for p, g in zip(params, grads, strict=True):
                p.grad = g.clone()
            opt.step()
            diff = _rel_diff(params, thetas)
            assert diff < case.tol64, f"step {t}, {name}: relative difference {diff:.3g}"


def _rel_diff(params, expected) -> float:
    """max over tensors of max |a - b| / max(max |b|, 1)."""
    return max(
        ((p.detach() - e).abs().max() / e.abs().max().clamp(min=1.0)).item()
        for p, e in zip(params, expected, strict=True)
    )


def test_reference_moves_every_option_set():
    """The reference is not a no-op for any set (a test against it could not fail): one
    step of each set moves the parameters, and differently from the case's first set."""
    for case in CASES.values():
        theta, g = torch.linspace(-1, 1, 7, dtype=torch.float64), torch.ones(7, dtype=torch.float64)
        outs = [reference_step(case, theta, g, {}, case.options(s), 1) for s in case.option_sets]
        for i, out in enumerate(outs):
            assert not torch.equal(out, theta), (case.row, i)
            assert i == 0 or not torch.equal(out, outs[0]), (case.row, i)


# --- the torch twin ----------------------------------------------------------------------------

TWIN_RUNS = [(c, i) for c in CASES.values() for i in c.twin_sets()]
TWIN_RUNS += [(c, "groups") for c in CASES.values() if len(c.twin_sets()) >= 2]


def test_every_twin_is_compared():
    """Each row with a twin has option sets torch takes (else the twin test never runs it)."""
    for case in CASES.values():
        assert (case.twin is None) == (case.twin_sets() == []), case.row


@pytest.mark.parametrize("pair", TWIN_RUNS, ids=set_id)
def test_matches_torch_twin(pair):
    """float32, 30 steps: every layout x kernel mode vs torch's default and its per-tensor
    loop (foreach=False)."""
    case, index = pair
    sets = sets_of(case, index, twin=True)
    # (torch's Muon has no foreach)
    hints = (None, False) if "foreach" in inspect.signature(case.twin).parameters else (None,)
    refs = {
        f"torch-foreach={foreach}": (
            lambda ps, f=foreach: build(case, ps, [{**s, "foreach": f} for s in sets], twin=True)
        )
        for foreach in hints
    }
    if hints == (None,):
        refs = {"torch": lambda ps: build(case, ps, sets, twin=True)}
    compare_trajectories(
        variants(case, sets, modes_for(index), twin=False),
        refs,
        shapes=case.shapes(SHAPES),
        steps=30,
        tol=case.tol32,
    )


# --- layouts and kernels ---------------------------------------------------------------------

# Many small tensors (the group kernel's shape: one native call for the whole group), one
# that is not a multiple of the vector width, a matrix and a 4-D kernel.
MANY = tuple((n,) for n in range(1, 41, 2)) + ((257,), (3, 5), (2, 3, 3, 3))


# The first two sets of each case: those hold the options the kernels take (optim_cases.py).
@pytest.mark.parametrize("pair", [(c, i) for c, i in ALL_SETS if i < 2], ids=set_id)
def test_layouts_and_kernels_agree(pair):
    """float32: flat and per-tensor, each in auto / eager / native / torch, vs the eager rule
    per tensor (the group kernel, the per-tensor and flat native kernels and torch's fused
    kernels compute the same numbers)."""
    case, index = pair
    sets = [case.option_sets[index]]
    ours = variants(case, sets, ALL_MODES)
    ref = {"per-tensor-eager": ours.pop("per-tensor-eager")}
    compare_trajectories(ours, ref, shapes=case.shapes(MANY), steps=8, tol=case.tol32)
