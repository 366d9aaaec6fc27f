"""The one table of optimizers: recipe names, classes, the defaults an alias changes, and the
torch.optim class each one is a twin of.

The recipe schema (its names, which option applies to which optimizer, the defaults), the
CLI, ``nnopt bench`` and the tests read this table; option defaults come from the class
signatures, never from copies. Adding an optimizer is its rule, its class file and one row.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from nnopt.optim import registry
from nnopt.optim.adafactor import Adafactor
from nnopt.optim.adagrad import Adagrad
from nnopt.optim.adam import Adam, AdamW
from nnopt.optim.ademamix import AdEMAMix
from nnopt.optim.base import Optimizer
from nnopt.optim.lion import Lion
from nnopt.optim.muon import Muon
from nnopt.optim.muon_for import MuonAdamW
from nnopt.optim.nadam import NAdam
from nnopt.optim.radam import RAdam
from nnopt.optim.rmsprop import RMSProp, RMSprop
from nnopt.optim.schedule_free import ScheduleFreeAdamW, ScheduleFreeSGD
from nnopt.optim.sgd import SGD
from nnopt.optim.soap import SOAP
from nnopt.optim.torch_signature import follow

# Constructor arguments that are not [optimizer] options of a recipe: the parameters and lr
# (always there), nnopt's own regularization (the [regularization] section), storage (``flat``)
# and torch's implementation hints or options nnopt refuses. ``weight_decay`` is an option,
# with the meaning its class gives it (decoupled for AdamW, coupled for the others), as torch.
NOT_OPTIONS = frozenset({"self", "params"} | (set(registry.OPTIONS) - set(registry.RECIPE_OPTIONS)))


@dataclass(frozen=True)
class Row:
    """One optimizer under one name."""

    name: str  # the recipe / CLI name
    cls: type[Optimizer]
    summary: str
    defaults: Mapping[str, Any] = field(default_factory=dict)  # what the alias changes
    twin: str | None = None  # the torch.optim class computing the same math from the same call
    # Another package's class computing the same math from the same call ("module:Class",
    # e.g. "schedulefree:AdamWScheduleFree"): what tests and ``nnopt bench`` compare with.
    reference: str | None = None
    # Builds from the model itself (muon: which parameters are hidden matrices), not from
    # its parameters alone: the trainer calls it with the model and its param groups.
    by_model: bool = False

    def options(self) -> dict[str, Any]:
        """The row's [optimizer] options and their defaults (the class's, then the alias's)."""
        return {**class_options(self.cls), **self.defaults}

    def build(self, params: Any, lr: Any, **options: Any) -> Optimizer:
        """The optimizer with the alias's defaults under the given options."""
        return self.cls(params, lr=lr, **{**self.defaults, **options})


ROWS: tuple[Row, ...] = (
    Row("sgd", SGD, "plain gradient descent", twin="SGD"),
    Row("momentum", SGD, "heavy-ball momentum", {"momentum": 0.9}, twin="SGD"),
    Row("nesterov", SGD, "Nesterov momentum", {"momentum": 0.9, "nesterov": True}, twin="SGD"),
    Row("adagrad", Adagrad, "AdaGrad", twin="Adagrad"),
    Row("rmsprop", RMSProp, "RMSProp, the seed's form (eps inside the root)"),
    Row("rmsprop_torch", RMSprop, "RMSProp, torch's form", twin="RMSprop"),
    Row("adam", Adam, "Adam", twin="Adam"),
    Row("adamw", AdamW, "Adam with decoupled weight decay", twin="AdamW"),
    Row("lion", Lion, "Lion: the sign of an interpolated momentum (Chen et al. 2023)"),
    Row("ademamix", AdEMAMix, "AdEMAMix: Adam plus a slow EMA (Pagliardini et al. 2024)"),
    Row("soap", SOAP, "SOAP: Adam in Shampoo's eigenbasis (Vyas et al. 2024)"),
    Row("nadam", NAdam, "NAdam: Adam with Nesterov momentum (Dozat 2016)", twin="NAdam"),
    Row("radam", RAdam, "RAdam: Adam with a rectified adaptive lr (Liu et al. 2020)", twin="RAdam"),
    Row("adafactor", Adafactor, "Adafactor: factored second moments", twin="Adafactor"),
    Row("muon_torch", Muon, "Muon, torch's: 2-D parameters only", twin="Muon"),
    Row("muon", MuonAdamW, "Muon on hidden matrices, AdamW on the rest", by_model=True),
    Row(
        "schedulefree_adamw",
        ScheduleFreeAdamW,
        "Schedule-Free AdamW (Defazio et al. 2024)",
        reference="schedulefree:AdamWScheduleFree",
    ),  # fmt: skip
    Row(
        "schedulefree_sgd",
        ScheduleFreeSGD,
        "Schedule-Free SGD (Defazio et al. 2024)",
        reference="schedulefree:SGDScheduleFree",
    ),  # fmt: skip
)
# Each twin takes the installed torch's defaults (see torch_signature.py), before anything
# below reads the signatures.
for _row in ROWS:
    if _row.twin:
        follow(_row.cls, _row.twin)
BY_NAME: dict[str, Row] = {row.name: row for row in ROWS}
NAMES: tuple[str, ...] = tuple(BY_NAME)


@cache
def class_options(cls: type[Optimizer]) -> dict[str, Any]:
    """A class's recipe options and their defaults, read from its constructor signature."""
    signature = inspect.signature(cls.__init__)
    return {
        name: p.default
        for name, p in signature.parameters.items()
        if name not in NOT_OPTIONS and p.kind is not p.VAR_KEYWORD
    }


def applies_to() -> dict[str, tuple[str, ...]]:
    """Each option -> the names of the optimizers that have it."""
    out: dict[str, list[str]] = {}
    for row in ROWS:
        for option in row.options():
            out.setdefault(option, []).append(row.name)
    return {k: tuple(v) for k, v in out.items()}


def row(name: str) -> Row:
    """The row called ``name``, or a ValueError listing the names."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(NAMES)}") from None
