"""Every optimizer row on test problems and bad arguments. Driven only by
``optim_cases.CASES`` and the table's class signatures.

Convergence, the optax way: each case's runs (lr, steps, options) must bring an
ill-conditioned quadratic and the Rosenbrock function within the case's distance of their
optimum, with exact float64 gradients.

Quadratic: f(x, y) = (x^2 + 50 y^2) / 2 (condition number 50) from (1.5, -1), optimum (0, 0).
Rosenbrock: f(x, y) = (1 - x)^2 + 100 (y - x^2)^2 from (-1.5, 2), optimum (1, 1): the start is
2.7 away, across a curved valley.
"""

from __future__ import annotations

import inspect
import math
import re

import pytest
import torch
from optim_cases import CASES
from optim_helpers import make_params

CURVATURE = torch.tensor([1.0, 50.0], dtype=torch.float64)


def quadratic_grad(p: torch.Tensor) -> torch.Tensor:
    return CURVATURE * p


def rosenbrock_grad(p: torch.Tensor) -> torch.Tensor:
    x, y = p[0], p[1]
    r = y - x * x
    return torch.stack([-2 * (1 - x) - 400 * x * r, 200 * r])


PROBLEMS = {
    "quadratic": (quadratic_grad, [1.5, -1.0], [0.0, 0.0]),
    "rosenbrock": (rosenbrock_grad, [-1.5, 2.0], [1.0, 1.0]),
}
RUNS = [
    pytest.param(case, problem, run, id=f"{case.row}-{problem}-{i}")
    for case in CASES.values()
    for problem in PROBLEMS
    for i, run in enumerate(getattr(case, problem))
]


@pytest.mark.parametrize(("case", "problem", "run"), RUNS)
def test_converges(case, problem, run):
    grad, start, optimum = PROBLEMS[problem]
    shape = case.shapes([(2,)])[0]  # (a matrix for a row that takes only those)
    p = torch.tensor(start, dtype=torch.float64).reshape(shape).requires_grad_(True)
    opt = case.table_row.build([p], lr=run.lr, **run.options)
    for _ in range(run.steps):
        p.grad = grad(p.detach().reshape(-1)).reshape(shape)
        opt.step()
    distance = (p.detach().reshape(-1) - torch.tensor(optimum, dtype=torch.float64)).norm().item()
    assert distance < run.tol, f"{distance:.3g} from the optimum after {run.steps} steps"


def test_every_case_has_both_problems():
    for case in CASES.values():
        assert case.quadratic and case.rosenbrock, case.row


# --- bad arguments -----------------------------------------------------------------------------

# Option -> (bad value, the name the error must say). Keyed by option, not by optimizer: each
# row is checked on every argument of its class's signature, so a new option fails
# test_every_option_has_bad_values until it has a line here.
NOT_BOOL = "yes"
BAD: dict[str, list[tuple]] = {
    "lr": [(-0.1, "lr"), (math.nan, "lr"), ("0.1", "lr")],
    "eps": [(-1e-8, "eps"), (0.0, "eps")],
    "weight_decay": [(-0.1, "weight_decay"), (math.inf, "weight_decay")],
    "l1": [(-0.1, "l1")],
    "l2": [(-0.1, "l2")],
    "momentum": [(1.0, "momentum"), (-0.1, "momentum")],
    "dampening": [(-0.1, "dampening")],
    # (inf, not 1.0: AdEMAMix's alpha is any weight >= 0, RMSprop's a decay in [0, 1))
    "alpha": [(math.inf, "alpha"), (-0.5, "alpha")],
    "rho": [(1.0, "rho"), (-0.5, "rho")],
    "lr_decay": [(-1.0, "lr_decay")],
    "momentum_decay": [(-1e-3, "momentum_decay"), (math.nan, "momentum_decay")],
    "initial_accumulator_value": [(-1.0, "initial_accumulator_value")],
    "betas": [
        ((1.0, 0.999), "betas[0]"),
        ((-0.1, 0.999), "betas[0]"),
        ((0.9, 1.0), "betas[1]"),
        ((0.9,), "betas"),
    ],
    "warmup_steps": [(-1, "warmup_steps")],
    "r": [(-0.5, "r"), (math.nan, "r")],
    "weight_lr_power": [(-1.0, "weight_lr_power")],
    "flat": [(NOT_BOOL, "flat"), (1, "flat")],
    "foreach": [(NOT_BOOL, "foreach")],
    "fused": [(NOT_BOOL, "fused")],
    # capturable=True is refused by name: nnopt cannot be captured in a CUDA graph.
    "capturable": [(True, "capturable")],
    "t_alpha_beta3": [(0, "t_alpha_beta3"), (-10.0, "t_alpha_beta3")],
    "shampoo_beta": [(1.0, "shampoo_beta"), (math.nan, "shampoo_beta")],
    "precondition_frequency": [(0, "precondition_frequency"), (2.5, "precondition_frequency")],
    "max_precond_dim": [(0, "max_precond_dim"), (True, "max_precond_dim")],
    "beta2_decay": [(0.1, "beta2_decay")],
    "d": [(0.5, "d")],
    "ns_coefficients": [
        ((1.0, 2.0), "ns_coefficients"),
        ((1.0, math.nan, 2.0), "ns_coefficients[1]"),
    ],
    "ns_steps": [(100, "ns_steps"), (2.5, "ns_steps")],
    "adjust_lr_fn": [("rms", "adjust_lr_fn")],
    "adamw_betas": [((1.0, 0.9), "adamw_betas[0]")],
    "adamw_eps": [(0.0, "adamw_eps")],
    "state_dtype": [("int4", "state_dtype"), ("float16", "state_dtype")],
    "param_update": [("round", "param_update"), (True, "param_update")],
    "min_8bit_size": [(0, "min_8bit_size"), (2.5, "min_8bit_size")],
}
for _flag in (
    "nesterov",
    "amsgrad",
    "centered",
    "eps_inside_sqrt",
    "maximize",
    "differentiable",
    "decoupled_weight_decay",
    "merge_dims",
    "precondition_1d",
    "normalize_grads",
    "correct_bias",
):
    BAD[_flag] = [(NOT_BOOL, _flag)]


def arguments(case) -> list[str]:
    """Every argument of the row's class but the parameters."""
    signature = inspect.signature(case.table_row.cls.__init__).parameters
    return [name for name in signature if name not in ("self", "params")]


def test_every_option_has_bad_values():
    missing = {c.row: sorted(set(arguments(c)) - set(BAD)) for c in CASES.values()}
    assert not any(missing.values()), missing


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_bad_arguments_are_refused_by_name(case):
    checked = 0
    for option in arguments(case):
        for value, name in BAD.get(option, ()):
            with pytest.raises((ValueError, TypeError), match=re.escape(name)) as error:
                case.table_row.build(make_params([(3,)]), **{"lr": 0.01, option: value})
            assert name in str(error.value), (option, value)
            checked += 1
    assert checked >= len(arguments(case))  # every argument had at least one bad value
