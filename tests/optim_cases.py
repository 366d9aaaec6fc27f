"""The one case table of the optimizer tests: one :class:`Case` per row of ``optim/table.py``.

Every generic optimizer test (``test_optim_cases*.py``, ``test_group_kernel.py``,
``test_table.py``) runs over ``CASES``; ``test_every_row_has_a_case`` fails when a table row
has none, so a new optimizer is stepped by every generic test once its case row exists.

A case holds what the tests cannot read from nnopt itself without trusting it:

- ``reference``: the rule in float64, written from the paper or SEED.md (plain torch ops on
  one tensor, never nnopt's code; ``optim_references.py``); ``optim_case.reference_step``
  wraps it in the documented order
  of one update (``optim/base.py``): maximize, coupled L2, decoupled decay, the rule, L1 as
  a soft threshold at ``l1 * lr / d`` with ``d`` the rule's preconditioner;
- ``option_sets``: kwargs that exercise each option; the first two run in every kernel mode
  and in the group kernel's tests, so they hold the options the kernels take (maximize,
  which the group kernel leaves to the per-tensor paths, comes later); those the torch twin
  accepts are compared with it;
- convergence runs per test problem (lr, steps, and the distance to the optimum to reach);
- ``holds``: the paper's / torch's defaults the row must hold (the table reads them from the
  class signature: this is the check that it reads the right ones);
- tolerances, float64 against the reference and float32 against torch and between kernels.
"""

from __future__ import annotations

from optim_case import Case, Converge
from optim_references import (
    adafactor_rule,
    adagrad_rule,
    adam_rule,
    ademamix_rule,
    lion_rule,
    muon_adamw_rule,
    muon_rule,
    nadam_rule,
    radam_rule,
    rmsprop_rule,
    schedule_free_rule,
    sgd_rule,
    soap_rule,
    warmed_up_lr,
)

# --- the cases -------------------------------------------------------------------------------

# Adam with L1 in float32: where v is tiny, d = sqrt(v_hat) + eps is too, so the per-coordinate
# threshold l1 * lr / d is large and an element near its kink turns one rounding of the kernel
# (vs the eager rule) into a visible difference. Adam's L1 sets use l2 = 1e-2, where
# test_group_kernel's elementwise comparison holds with a 10x margin (with l2 = 0.05 one
# element in 65k sat at 2x its tolerance).

# Every regularizer nnopt has at once: L1's per-coordinate threshold, L2 and decoupled decay.
ALL_REGULARIZERS = dict(l1=0.01, l2=0.1, weight_decay=0.2, decoupled_weight_decay=True)


def _sgd_case(row: str, sets: tuple, quadratic: Converge, rosenbrock: Converge, holds) -> Case:
    return Case(row, sgd_rule, sets, (quadratic,), (rosenbrock,), holds, lr=0.05)


def _schedule_free_case(row: str, sets: tuple, quadratic: Converge, rosenbrock: Converge,
                        holds: dict) -> Case:  # fmt: skip
    """The package's defaults beside ``holds``; the rule owns weight_decay, warmed-up lr."""
    shared = {"weight_decay": 0, "warmup_steps": 0, "r": 0.0, "weight_lr_power": 2.0}
    return Case(row, schedule_free_rule, sets, (quadratic,), (rosenbrock,), {**holds, **shared},
                decay_in_rule=True, step_lr=warmed_up_lr)  # fmt: skip


CASES: dict[str, Case] = {
    case.row: case
    for case in (
        _sgd_case(
            "sgd",
            ({}, ALL_REGULARIZERS, dict(weight_decay=0.05, maximize=True)),
            Converge(0.035, 500, 1e-6),
            # Plain descent crawls along the curved valley: progress, not precision.
            Converge(0.002, 2000, 0.05),
            {"momentum": 0.0, "nesterov": False, "dampening": 0.0},
        ),
        _sgd_case(
            "momentum",
            (
                dict(dampening=0.1, weight_decay=0.05),
                dict(l1=1e-3, l2=0.05),
                dict(momentum=0.5, maximize=True),
                ALL_REGULARIZERS,
            ),
            Converge(0.01, 500, 1e-6, dict(momentum=0.7)),
            Converge(0.002, 1000, 1e-3),
            {"momentum": 0.9, "nesterov": False},
        ),
        _sgd_case(
            "nesterov",
            ({}, dict(l1=1e-3, weight_decay=0.01), dict(momentum=0.5, maximize=True)),
            Converge(0.01, 500, 1e-6, dict(momentum=0.7)),
            Converge(0.001, 2000, 1e-3),
            {"momentum": 0.9, "nesterov": True},
        ),
        Case(
            "adagrad",
            adagrad_rule,
            (
                dict(initial_accumulator_value=0.3, lr_decay=0.01),
                dict(l1=1e-3, l2=0.05),
                dict(weight_decay=0.05, eps=1e-3, maximize=True),
                ALL_REGULARIZERS,
            ),
            (Converge(0.5, 200, 1e-6),),
            # The ever-growing accumulator stalls it in the valley: progress, not precision.
            (Converge(2.0, 2000, 0.5),),
            {"eps": 1e-10, "lr_decay": 0.0, "initial_accumulator_value": 0.0},
            lr=0.1,
            constructor_only=frozenset({"initial_accumulator_value"}),
        ),
        Case(
            "rmsprop",
            rmsprop_rule,
            (
                dict(centered=True, momentum=0.5, rho=0.8),
                dict(l1=1e-3, l2=0.05),
                dict(eps_inside_sqrt=False, weight_decay=0.05, maximize=True),
                ALL_REGULARIZERS,
            ),
            # At a constant lr RMSProp hovers within O(lr) of the optimum.
            (Converge(0.01, 500, 2e-2),),
            (Converge(0.001, 1500, 3e-3, dict(momentum=0.9)),),
            {"alpha": 0.9, "eps": 1e-8, "eps_inside_sqrt": True},
        ),
        Case(
            "rmsprop_torch",
            rmsprop_rule,
            (
                dict(centered=True, momentum=0.9, alpha=0.95, eps=1e-6),
                dict(l1=1e-3, l2=0.05, eps_inside_sqrt=True),
                dict(momentum=0.5, weight_decay=0.05, maximize=True),
                ALL_REGULARIZERS,
            ),
            (Converge(0.01, 500, 2e-2, dict(alpha=0.9, centered=True, momentum=0.9)),),
            (Converge(0.001, 1500, 3e-3, dict(alpha=0.9, centered=True, momentum=0.9)),),
            {"alpha": 0.99, "eps": 1e-8, "eps_inside_sqrt": False},
        ),
        Case(
            "adam",
            adam_rule,
            (
                dict(betas=(0.8, 0.99), amsgrad=True, weight_decay=0.05),
                dict(l1=1e-3, l2=1e-2),
                dict(weight_decay=0.1, decoupled_weight_decay=True, maximize=True),
                {**ALL_REGULARIZERS, "amsgrad": True},
            ),
            (Converge(0.05, 500, 1e-6), Converge(0.05, 500, 1e-6, dict(amsgrad=True))),
            (Converge(0.05, 2000, 1e-3), Converge(0.1, 2000, 1e-3, dict(amsgrad=True))),
            {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False},
        ),
        Case(
            "adamw",
            adam_rule,
            (
                dict(weight_decay=0.1, amsgrad=True),
                dict(l1=1e-3, l2=1e-2),
                dict(betas=(0.5, 0.9), eps=1e-6, maximize=True),
            ),
            (Converge(0.05, 500, 1e-6, dict(weight_decay=0.01)),),
            # Decay pulls toward 0, so the minimizer moves off (1, 1) by O(weight_decay).
            (Converge(0.05, 2000, 1e-2, dict(weight_decay=1e-4)),),
            {"weight_decay": 1e-2, "decoupled_weight_decay": True},
            implied={"decoupled_weight_decay": True},
        ),
        Case(
            "lion",
            lion_rule,
            (
                dict(betas=(0.95, 0.98), weight_decay=0.1),
                dict(l1=1e-3, l2=1e-2),
                dict(weight_decay=0.1, decoupled_weight_decay=False, maximize=True),
                ALL_REGULARIZERS,
            ),
            # Steps of exactly lr in every coordinate: it ends within about lr of the optimum.
            (Converge(0.01, 500, 3e-2),),
            (Converge(0.002, 3000, 5e-2),),  # (observed 0.009)
            {"betas": (0.9, 0.99), "weight_decay": 0.0, "decoupled_weight_decay": True},
            lr=1e-3,
        ),
        Case(
            "ademamix",
            ademamix_rule,
            (
                dict(t_alpha_beta3=20, weight_decay=0.1),
                dict(l1=1e-3, l2=1e-2, betas=(0.8, 0.99, 0.999), alpha=2.0),
                dict(weight_decay=0.1, decoupled_weight_decay=False, maximize=True),
                {**ALL_REGULARIZERS, "t_alpha_beta3": 10.0, "alpha": 8.0},
            ),
            # The slow EMA (b3 = 0.9999, ~7000 steps) still carries the start after 500 steps:
            # a b3 of 0.99-0.999 shows convergence, the defaults progress (observed 0.0035).
            (
                Converge(0.03, 500, 1e-5, dict(betas=(0.9, 0.999, 0.99), alpha=2.0)),
                Converge(0.1, 500, 2e-2),
            ),
            (
                Converge(0.05, 2000, 1e-5, dict(betas=(0.9, 0.999, 0.99), alpha=2.0)),
                Converge(0.05, 2000, 3e-2, dict(betas=(0.9, 0.999, 0.999), t_alpha_beta3=500)),
            ),
            {"betas": (0.9, 0.999, 0.9999), "alpha": 5.0, "t_alpha_beta3": None, "eps": 1e-8},
        ),
        Case(
            "soap",
            soap_rule,
            (
                dict(precondition_frequency=3, weight_decay=0.05),
                # max_precond_dim=4 leaves (3, 5)'s 5 unrotated: its first factor G^T G has
                # rank 3, so which basis eigh returns for the null space is decided by
                # rounding, and L2's g + l2 theta rounds differently here and in the base.
                dict(
                    precondition_frequency=4,
                    max_precond_dim=4,
                    precondition_1d=True,
                    l1=1e-3,
                    l2=0.01,
                ),
                dict(
                    merge_dims=True,  # (2, 3, 3, 3) -> (6, 3, 3)
                    max_precond_dim=6,
                    normalize_grads=True,
                    correct_bias=False,
                    shampoo_beta=0.9,
                    precondition_frequency=2,
                    maximize=True,
                ),
                {**ALL_REGULARIZERS, "precondition_frequency": 5, "max_precond_dim": 4},
            ),
            (Converge(0.01, 500, 1e-3),),
            (Converge(0.01, 2000, 1e-2),),
            {
                "betas": (0.95, 0.95),
                "shampoo_beta": -1,
                "eps": 1e-8,
                "weight_decay": 0.01,
                "precondition_frequency": 10,
                "max_precond_dim": 10000,
                "decoupled_weight_decay": True,
            },
        ),
        Case(
            "nadam",
            nadam_rule,
            (
                dict(betas=(0.8, 0.99), momentum_decay=0.01, weight_decay=0.05),
                dict(l1=1e-3, l2=1e-2),
                dict(weight_decay=0.1, decoupled_weight_decay=True, maximize=True),
                ALL_REGULARIZERS,
            ),
            (Converge(0.05, 500, 1e-6),),
            (Converge(0.02, 2000, 0.1),),  # (observed 0.039)
            {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "momentum_decay": 4e-3},
            # torch keeps the product of the mu_t in float32 (state["mu_product"]), and so
            # does nnopt, to cross state dicts with it: float64 runs agree to that rounding.
            tol64=1e-7,
        ),
        Case(
            "radam",
            radam_rule,
            (
                # beta2 = 0.99: the first 5 steps unrectified, then rectified.
                dict(betas=(0.8, 0.99), weight_decay=0.05),
                dict(l1=1e-3, l2=1e-2),
                dict(weight_decay=0.1, decoupled_weight_decay=True, maximize=True),
                ALL_REGULARIZERS,
            ),
            (Converge(0.05, 500, 1e-6),),
            # Its first 5 steps are momentum SGD on Rosenbrock's raw gradient (~1e3 at the
            # start): lr 0.015 already diverges there. beta2 = 0.99 rectifies sooner after.
            (Converge(0.01, 3000, 3e-3, dict(betas=(0.9, 0.99))),),  # (observed 4e-4)
            {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
        ),
        Case(
            "adafactor",
            adafactor_rule,
            (
                dict(weight_decay=0.1, d=2.0),
                dict(l1=1e-3, l2=1e-2),
                dict(beta2_decay=-0.5, eps=(1e-30, 1e-3), maximize=True),
                {**ALL_REGULARIZERS, "decoupled_weight_decay": False},
            ),
            (Converge(0.05, 2000, 1e-4),),  # (observed 2e-6)
            # Relative steps (a share of RMS(theta)) crawl in the valley: progress, not precision.
            (Converge(0.2, 2000, 0.6),),  # (observed 0.29)
            {"beta2_decay": -0.8, "eps": (None, 1e-3), "d": 1.0, "weight_decay": 0.0},
            lr=0.05,
            decays_in_rule=True,
            group_kernel=False,
        ),
        Case(
            "muon_torch",
            muon_rule,
            (
                dict(weight_decay=0.05, adjust_lr_fn="match_rms_adamw"),
                dict(l1=1e-3, l2=1e-2),
                dict(nesterov=False, momentum=0.9, ns_steps=3, adjust_lr_fn="original"),
                ALL_REGULARIZERS,
            ),
            # On a (2, 1) matrix Muon is normalized gradient descent: within about lr.
            # (few steps: a Newton-Schulz step costs ~1 ms on a tiny matrix)
            (Converge(0.01, 400, 2e-2, dict(weight_decay=0.0)),),  # (observed 5e-3)
            (Converge(0.005, 1000, 4e-2, dict(weight_decay=0.0)),),  # (observed 1e-2)
            {"momentum": 0.95, "nesterov": True, "weight_decay": 0.1, "ns_steps": 5},
            lr=0.02,
            # bfloat16 Newton-Schulz (torch's) vs the float64 reference: observed 3e-3 over 30
            # steps with L1 (9e-4 without), a tenth of one step (lr r = 0.07 on a (13, 1))
            tol64=6e-3,
            matrices=True,
            group_kernel=False,
        ),
        Case(
            "muon",
            muon_adamw_rule,
            (
                {},
                dict(l1=1e-3, l2=1e-2),
                dict(
                    nesterov=False,
                    adamw_betas=(0.8, 0.99),
                    adjust_lr_fn="original",
                    weight_decay=0.0,
                ),  # fmt: skip
            ),
            # A vector goes to the AdamW half (its Muon half is muon_torch's case).
            (Converge(0.1, 500, 5e-3, dict(weight_decay=0.0)),),  # (observed 7e-4)
            (Converge(0.01, 3000, 2e-3, dict(weight_decay=0.0)),),  # (observed 1.9e-4)
            {"adjust_lr_fn": "match_rms_adamw", "adamw_betas": (0.9, 0.95), "weight_decay": 0.1},
            tol64=3e-3,
            group_kernel=False,
        ),
        _schedule_free_case(
            "schedulefree_adamw",
            (
                dict(betas=(0.8, 0.99), weight_decay=0.1, warmup_steps=5),
                dict(l1=1e-3, l2=1e-2, r=1.0, weight_lr_power=1.0),
                dict(eps=1e-6, maximize=True, warmup_steps=3),
            ),
            # The average converges at O(1/t): the quadratic's runs end near 1e-13 (y).
            Converge(0.3, 500, 1e-9),
            Converge(0.05, 2000, 0.3),  # progress along the valley (observed 0.066)
            {"betas": (0.9, 0.999), "eps": 1e-8},
        ),
        _schedule_free_case(
            "schedulefree_sgd",
            (
                dict(momentum=0.8, weight_decay=0.1, warmup_steps=5),
                dict(l1=1e-3, l2=0.05, r=0.5),
                dict(maximize=True, weight_lr_power=0.0),
            ),
            Converge(0.035, 2000, 2e-3),  # (observed 2.4e-4)
            Converge(0.002, 2000, 1.5, dict(momentum=0.5)),  # progress (observed 0.38)
            {"momentum": 0.9},
        ),
    )
}

# Every (case, option set) pair, as pytest ids "row-index".
ALL_SETS = [(c, i) for c in CASES.values() for i in range(len(c.option_sets))]


def set_id(pair: tuple[Case, int]) -> str:
    return f"{pair[0].row}-{pair[1]}"
