"""What one case of the optimizer tests is (:class:`Case`, :class:`Converge`), how its
reference rule makes one update (:func:`reference_step`), and how a case's optimizer is built
for a run (:func:`build`, :func:`variants`: every layout and kernel mode). The table of cases
is ``optim_cases.CASES``, the reference rules ``optim_references``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from optim_references import as_matrix
from torch import Tensor

from nnopt.optim import table

# A rule: (theta, g, state, options, t) -> (new theta, preconditioner d). ``state`` is the
# tensor's own dict, filled on its first step; t counts steps from 1.
Rule = Callable[[Tensor, Tensor, dict, dict, int], tuple[Tensor, Any]]


@dataclass(frozen=True)
class Converge:
    """Run ``steps`` steps at ``lr`` (plus ``options``) and end within ``tol`` of the optimum.

    ``tol`` has a margin of several times over the observed distance: it says what the
    method reaches at a constant lr (see the problems in ``test_optim_cases_convergence``).
    """

    lr: float
    steps: int
    tol: float
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    row: str  # the table row's name
    reference: Rule
    option_sets: tuple[dict[str, Any], ...]
    quadratic: tuple[Converge, ...]
    rosenbrock: tuple[Converge, ...]
    holds: dict[str, Any]  # option -> value every param group of the row must hold
    lr: float = 0.01  # the lr of the step-for-step tests
    implied: dict[str, Any] = field(default_factory=dict)  # what the class fixes unseen (AdamW)
    # Options torch's twin reads from its constructor only, never per param group.
    constructor_only: frozenset[str] = frozenset()
    tol64: float = 1e-10  # float64 vs the reference: max |a - b| / max(max |b|, 1)
    tol32: float = 1e-5  # float32 vs torch, and between layouts and kernels
    # The row takes 2-D parameters only (torch's Muon): the tests' shapes become matrices
    # (:func:`as_matrix`) and a model's other parameters are left out.
    matrices: bool = False
    decays_in_rule: bool = False  # the reference applies decoupled decay itself (Adafactor)
    group_kernel: bool = True  # the row has kernels for test_group_kernel to compare

    def shapes(self, shapes):
        """The test shapes as this row takes them."""
        return tuple(map(as_matrix, shapes)) if self.matrices else tuple(shapes)

    def trainable(self, params) -> list:
        """The parameters of a model this row takes."""
        return [p for p in params if p.ndim == 2] if self.matrices else list(params)

    # The rule applies weight_decay itself (schedule-free: the paper's decay at y, through z),
    # so reference_step adds no coupled or decoupled term for it.
    decay_in_rule: bool = False
    # The lr of step t that L1's threshold scales (schedule-free's warm-up); None: o["lr"].
    step_lr: Callable[[dict, int], float] | None = None

    @property
    def table_row(self) -> table.Row:
        return table.BY_NAME[self.row]

    @property
    def twin(self) -> type[torch.optim.Optimizer] | None:
        name = self.table_row.twin
        return getattr(torch.optim, name) if name else None

    def options(self, option_set: dict[str, Any]) -> dict[str, Any]:
        """Every option of one update under ``option_set``: the class signature's defaults,
        the alias's, the case's lr, the set (what the reference reads)."""
        row = self.table_row
        signature = inspect.signature(row.cls.__init__).parameters.values()
        defaults = {p.name: p.default for p in signature if p.default is not p.empty}
        return {**defaults, **self.implied, **row.defaults, "lr": self.lr, **option_set}

    def twin_sets(self) -> list[int]:
        """The indices of the option sets torch's twin takes as they are (with the alias's
        defaults): nnopt's extras (l1, l2, ...) are left out by the twin's signature."""
        if self.twin is None:
            return []
        accepted = set(inspect.signature(self.twin.__init__).parameters)
        aliased = set(self.table_row.defaults)
        return [i for i, s in enumerate(self.option_sets) if aliased | set(s) <= accepted]


def reference_step(case: Case, theta: Tensor, g: Tensor, s: dict, o: dict, t: int) -> Tensor:
    """One update in the order ``optim/base.py`` documents (torch's, plus nnopt's L1)."""
    lr, wd = o["lr"], 0.0 if case.decay_in_rule else o["weight_decay"]
    decoupled = o.get("decoupled_weight_decay", False)
    if o.get("maximize", False):  # (torch's Muon has no maximize)
        g = -g
    g = g + (o.get("l2", 0.0) + (0.0 if decoupled else wd)) * theta
    if decoupled and not case.decays_in_rule:
        theta = theta * (1 - lr * wd)
    theta, d = case.reference(theta, g, s, o, t)
    if o.get("l1", 0.0):
        lr = case.step_lr(o, t) if case.step_lr else lr
        theta = theta.sign() * (theta.abs() - o["l1"] * lr / d).clamp(min=0)
    return theta


# --- building the row's optimizer for a run ----------------------------------------------------

ALL_MODES = ("auto", "eager", "native", "torch")  # kernels: every mode an optimizer has
FLATS = (False, True)


def sets_of(case: Case, index: int | str, twin: bool = False) -> list[dict]:
    """One option set (one param group), or "groups": the first two (that the twin takes,
    with ``twin``), one group each."""
    if index != "groups":
        return [case.option_sets[index]]
    indices = case.twin_sets() if twin else range(len(case.option_sets))
    return [case.option_sets[i] for i in list(indices)[:2]]


def build(case: Case, params, sets: list[dict], *, flat=False, kernels="auto", twin=None):
    """The row's optimizer over ``params``, split round-robin into one param group per
    option set; ``twin``: a call torch's twin takes too (True: build the twin itself)."""
    shared = {"lr": case.lr}
    if len(sets) == 1:
        arg: list = params
        shared = {**shared, **sets[0]}
    else:
        groups = [dict(s) for s in sets]
        for key in case.constructor_only if twin is not None else ():
            # torch reads it from the constructor only: give both sides the same one.
            shared[key] = groups[0].get(key, shared.get(key))
            for g in groups:
                g.pop(key, None)
        arg = [dict(params=params[k :: len(sets)], **g) for k, g in enumerate(groups)]
    if twin:
        return case.twin(arg, **{**case.table_row.defaults, **shared})
    opt = case.table_row.build(arg, flat=flat, **shared)
    opt.kernels = kernels
    return opt


def variants(case: Case, sets: list[dict], modes, twin=None) -> dict:
    return {
        f"{'flat' if flat else 'per-tensor'}-{mode}": (
            lambda ps, flat=flat, mode=mode: build(
                case, ps, sets, flat=flat, kernels=mode, twin=twin
            )
        )
        for flat in FLATS
        for mode in modes
    }
