"""The one registry of optimizer options: name, kind and range, whose it is, one line of doc.

Every ``validate_group`` checks its options here (:func:`check`), the recipe schema derives
each [optimizer] key's type and range from it, the table derives which constructor arguments
are not recipe options, and ``load_state_dict`` which options are nnopt's own (a torch.optim
state dict never has them). A new option is one line here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from nnopt.optim.validation import (
    OptionError,
    check_at_least_one,
    check_below_one,
    check_iterations,
    check_nonnegative,
    check_nonpositive,
    check_positive,
    check_triple,
    check_type,
    check_unit_interval,
)

Kind = Literal[
    "nonnegative", "positive", "unit", "bool", "flag", "pair", "count", "below_one",
    "positive_or_none", "nonpositive", "at_least_one", "iterations", "triple", "choice",
]  # fmt: skip


@dataclass(frozen=True)
class Option:
    """One option. ``kind``: nonnegative (>= 0, finite), positive (> 0, finite), unit ([0, 1)),
    bool, flag (True, False or None: torch's implementation hints), pair (two unit numbers),
    count (an int >= 1), below_one (a number < 1), positive_or_none (> 0, or None: off),
    nonpositive (<= 0), at_least_one (>= 1), iterations (an int in [0, 100)), triple (three
    finite numbers), choice (one of ``CHOICES[name]``).
    ``recipe``: an [optimizer] key of a recipe (lr, flat and the [regularization] section are
    recipe fields of their own)."""

    name: str
    kind: Kind
    origin: Literal["torch", "nnopt", "paper"]  # paper: the algorithm's reference code names it
    recipe: bool
    doc: str
    # Two optimizers give the name different ranges (AdEMAMix's alpha is a weight >= 0,
    # RMSprop's a decay in [0, 1); AdEMAMix has three betas): ``kind`` is the common meaning,
    # each class checks its own, and a recipe's value is checked by the class it builds.
    per_class: bool = False


OPTIONS: dict[str, Option] = {
    o.name: o
    for o in (
        Option("lr", "nonnegative", "torch", False, "learning rate (float, Tensor or schedule)"),
        Option("momentum", "unit", "torch", True, "momentum coefficient mu"),
        Option("dampening", "nonnegative", "torch", True, "share of each gradient left out of b"),
        Option("nesterov", "bool", "torch", True, "Nesterov momentum"),
        Option("weight_decay", "nonnegative", "torch", True, "torch's decay for that class"),
        Option("lr_decay", "nonnegative", "torch", True, "AdaGrad: eta / (1 + (t-1) lr_decay)"),
        Option("initial_accumulator_value", "nonnegative", "torch", True, "AdaGrad's G_0"),
        Option("eps", "positive", "torch", True, "added to the denominator"),
        Option("alpha", "unit", "torch", True, "RMSprop's decay of E", per_class=True),
        Option("centered", "bool", "torch", True, "RMSprop: divide by the variance"),
        Option("betas", "pair", "torch", True, "Adam's (beta1, beta2)", per_class=True),
        Option("amsgrad", "bool", "torch", True, "Adam: the running maximum of v"),
        Option("maximize", "bool", "torch", False, "ascend the objective"),
        Option("foreach", "flag", "torch", False, "a hint: nnopt picks its own kernels"),
        Option("fused", "flag", "torch", False, "a hint: nnopt picks its own kernels"),
        Option("differentiable", "bool", "torch", False, "autograd through the step"),
        Option("capturable", "bool", "torch", False, "CUDA graphs (refused)"),
        Option("decoupled_weight_decay", "bool", "torch", False, "weight_decay decoupled"),
        Option("momentum_decay", "nonnegative", "torch", True, "NAdam's psi: mu_t schedule"),
        Option("rho", "unit", "nnopt", True, "the seed's RMSProp decay (torch's alpha)"),
        Option("eps_inside_sqrt", "bool", "nnopt", True, "RMSProp: d = sqrt(E + eps)"),
        Option("l1", "nonnegative", "nnopt", False, "proximal L1 (exact zeros)"),
        Option("l2", "nonnegative", "nnopt", False, "coupled L2 on top of weight_decay"),
        Option("flat", "bool", "nnopt", False, "flat buffers (storage, not math)"),
        Option("state_dtype", "choice", "nnopt", True, "state storage: None (the weight's)"),
        Option("param_update", "choice", "nnopt", True, "bfloat16 weights: how they round"),
        Option("min_8bit_size", "count", "nnopt", True, "int8 state from this many elements"),
        Option("t_alpha_beta3", "positive_or_none", "paper", True, "AdEMAMix: warmup steps"),
        Option("shampoo_beta", "below_one", "paper", True, "SOAP: decay of L, R (< 0: beta2)"),
        Option("precondition_frequency", "count", "paper", True, "SOAP: steps between bases"),
        Option("max_precond_dim", "count", "paper", True, "SOAP: larger dims stay unrotated"),
        Option("merge_dims", "bool", "paper", True, "SOAP: merge small dims before rotating"),
        Option("precondition_1d", "bool", "paper", True, "SOAP: rotate 1-D parameters too"),
        Option("normalize_grads", "bool", "paper", True, "SOAP: unit-RMS update per tensor"),
        Option("correct_bias", "bool", "paper", True, "SOAP: Adam's bias correction"),
        Option("beta2_decay", "nonpositive", "torch", True, "Adafactor: 1 - beta2_t = t^decay"),
        Option("d", "at_least_one", "torch", True, "Adafactor: clip RMS(update) at d"),
        Option("ns_coefficients", "triple", "torch", False, "Muon: Newton-Schulz (a, b, c)"),
        Option("ns_steps", "iterations", "torch", True, "Muon: Newton-Schulz iterations"),
        Option("adjust_lr_fn", "choice", "torch", True, "Muon: the lr's scaling by shape"),
        Option("adamw_betas", "pair", "nnopt", True, "muon_for: AdamW's (beta1, beta2)"),
        Option("adamw_eps", "positive", "nnopt", True, "muon_for: AdamW's eps"),
        Option("warmup_steps", "nonnegative", "paper", True, "schedule-free: linear lr warm-up"),
        Option("r", "nonnegative", "paper", True, "schedule-free: average weights t^r"),
        Option("weight_lr_power", "nonnegative", "paper", True, "schedule-free: lr_max^power"),
    )
}
# The allowed values of each "choice" option (torch's Muon: None means "original").
CHOICES: dict[str, tuple[Any, ...]] = {
    "adjust_lr_fn": (None, "original", "match_rms_adamw"),
    # (nnopt.optim.lowbit: the state's storage; how a bfloat16 weight takes its update)
    "state_dtype": (None, "float32", "bfloat16", "int8"),
    "param_update": ("plain", "kahan", "stochastic"),
}
# What a group without the option means (a state dict of an older torch may lack it).
ABSENT = {
    "maximize": False,
    "foreach": None,
    "fused": None,
    "differentiable": False,
    "decoupled_weight_decay": False,
    "state_dtype": None,
    "param_update": "plain",
    "min_8bit_size": 4096,
}
RECIPE_OPTIONS = tuple(name for name, o in OPTIONS.items() if o.recipe)
NNOPT_OWN = frozenset(name for name, o in OPTIONS.items() if o.origin == "nnopt")

_TYPES = {"bool": (bool,), "flag": (bool, type(None))}
_RANGES = {
    "nonnegative": check_nonnegative,
    "positive": check_positive,
    "unit": check_unit_interval,
    "nonpositive": check_nonpositive,
    "at_least_one": check_at_least_one,
    "iterations": check_iterations,
    "triple": check_triple,
}


def check(name: str, value: Any, *, shown: str | None = None) -> None:
    """Validate ``value`` as option ``name`` (``shown``: the name the message uses, e.g. the
    seed's ``rho`` for torch's ``alpha``), raising :class:`OptionError` naming it."""
    kind = OPTIONS[name].kind
    shown = shown or name
    if kind in _TYPES:
        check_type(shown, value, _TYPES[kind])
    elif kind == "count":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise OptionError(f"{shown} must be an integer >= 1, got {value!r}", option=shown)
    elif kind == "below_one":
        check_below_one(shown, value)
    elif kind == "positive_or_none":
        if value is not None:
            check_positive(shown, value)
    elif kind == "pair":
        if not isinstance(value, tuple | list) or len(value) != 2:
            raise OptionError(f"{shown} must be a pair, got {value!r}", option=shown)
        for index, item in enumerate(value):
            check_unit_interval(f"{shown}[{index}]", item)
    elif kind == "choice":
        if value not in CHOICES[name] or isinstance(value, bool):
            allowed = ", ".join(map(repr, CHOICES[name]))
            torch_words = {
                "adjust_lr_fn": f"Adjust learning rate function {value} is not supported"
            }
            raise OptionError(
                f"{shown} must be one of {allowed}, got {value!r}",
                torch_words.get(name),
                option=shown,
            )
    else:
        _RANGES[kind](shown, value)


def check_all(group: dict[str, Any], names: tuple[str, ...]) -> None:
    """:func:`check` each of ``names`` in ``group``."""
    for name in names:
        check(name, group[name])
