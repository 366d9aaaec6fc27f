"""nnopt vs torch.optim, step by step, wherever the formulas agree.

Every (optimizer, options) pair below is the same math in both libraries. Each runs 60 steps of
random gradients on a scalar, a vector, a matrix, a 4-D kernel and an odd-sized vector, in both
nnopt storage modes (flat buffers, per tensor) and both kernel modes (PyTorch fused, eager rule),
against torch's default implementation and its per-tensor loop (foreach=False): every nnopt
variant must stay within 1e-5 (relative) of every torch variant after every step.
"""

from __future__ import annotations

import pytest
import torch
from optim_helpers import compare_trajectories, nnopt_variants, on_groups, torch_variants

import nnopt
from nnopt.optim.torch_signature import torch_has

# (nnopt class, nnopt kwargs, torch class, torch kwargs), with an id.
CASES = []


def case(name, ours, ours_kw, ref, ref_kw):
    CASES.append(pytest.param(ours, ours_kw, ref, ref_kw, id=name))


for _mom, _nest in ((0.0, False), (0.9, False), (0.9, True)):
    for _l2 in (0.0, 0.05):
        case(
            f"sgd-mom{_mom}-nesterov{_nest}-l2{_l2}",
            nnopt.SGD,
            dict(lr=0.05, momentum=_mom, nesterov=_nest, l2=_l2),
            torch.optim.SGD,
            dict(lr=0.05, momentum=_mom, nesterov=_nest, weight_decay=_l2),
        )
for _ams in (False, True):
    for _l2 in (0.0, 0.05):
        case(
            f"adam-amsgrad{_ams}-l2{_l2}",
            nnopt.Adam,
            dict(lr=0.01, betas=(0.8, 0.99), amsgrad=_ams, l2=_l2),
            torch.optim.Adam,
            dict(lr=0.01, betas=(0.8, 0.99), amsgrad=_ams, weight_decay=_l2),
        )
    case(
        f"adamw-amsgrad{_ams}",
        nnopt.AdamW,
        dict(lr=0.01, amsgrad=_ams, weight_decay=0.1),
        torch.optim.AdamW,
        dict(lr=0.01, amsgrad=_ams, weight_decay=0.1),
    )
case("adamw-defaults", nnopt.AdamW, {}, torch.optim.AdamW, {})
case(
    "adam-decoupled_weight_decay-is-adamw",
    nnopt.Adam,
    dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
    torch.optim.AdamW,
    dict(lr=0.01, weight_decay=0.1),
)
for _acc in (0.0, 0.1):
    for _l2 in (0.0, 0.05):
        case(
            f"adagrad-acc{_acc}-l2{_l2}",
            nnopt.AdaGrad,
            dict(lr=0.1, initial_accumulator_value=_acc, l2=_l2),
            torch.optim.Adagrad,
            dict(lr=0.1, initial_accumulator_value=_acc, weight_decay=_l2),
        )
for _centered in (False, True):
    for _mom in (0.0, 0.9):
        for _l2 in (0.0, 0.05):
            case(
                f"rmsprop-centered{_centered}-mom{_mom}-l2{_l2}",
                nnopt.RMSProp,
                dict(
                    lr=0.01,
                    rho=0.95,
                    eps=1e-6,
                    eps_inside_sqrt=False,
                    centered=_centered,
                    momentum=_mom,
                    l2=_l2,
                ),
                torch.optim.RMSprop,
                dict(
                    lr=0.01,
                    alpha=0.95,
                    eps=1e-6,
                    centered=_centered,
                    momentum=_mom,
                    weight_decay=_l2,
                ),
            )


# The drop-in promise: the very same call (torch's arguments, positional included) on the
# class of the same name gives the same numbers.
SAME_CALL = [
    pytest.param("SGD", (0.05, 0.9, 0.1, 0.01), {}, id="sgd-positional-dampening-wd"),
    pytest.param("SGD", (0.05, 0.9, 0.0, 0.01, True), {"maximize": True}, id="sgd-nesterov-max"),
    pytest.param("SGD", (), {}, id="sgd-defaults"),
    pytest.param("Adam", (0.01, (0.8, 0.99), 1e-8, 0.05, True), {}, id="adam-positional"),
    pytest.param("Adam", (), {"weight_decay": 0.1, "maximize": True}, id="adam-coupled-max"),
    pytest.param("AdamW", (0.01, (0.9, 0.99), 1e-6, 0.2), {"maximize": True}, id="adamw-pos"),
    pytest.param("Adagrad", (0.1, 0.01), {}, id="adagrad-positional-lr_decay"),
    pytest.param("Adagrad", (0.1, 0.0, 0.05, 0.1, 1e-8), {}, id="adagrad-positional-all"),
    pytest.param("RMSprop", (), {}, id="rmsprop-defaults"),
    pytest.param("RMSprop", (0.01, 0.9, 1e-6, 0.05, 0.9, True), {}, id="rmsprop-positional"),
    pytest.param("RMSprop", (0.01,), {"maximize": True}, id="rmsprop-max"),
    pytest.param("Adam", (torch.tensor(0.01),), {}, id="adam-tensor-lr"),
    pytest.param("SGD", (0.05, 0.9), {"fused": True}, id="sgd-fused-flag"),
]


@pytest.mark.parametrize(("name", "args", "kwargs"), SAME_CALL)
def test_same_call_same_numbers(name, args, kwargs):
    compare_trajectories(
        nnopt_variants(getattr(nnopt, name), *args, flat_modes=(True, False), **kwargs),
        torch_variants(getattr(torch.optim, name), *args, **kwargs),
        steps=20,
    )


@pytest.mark.parametrize(("ours", "ours_kw", "ref", "ref_kw"), CASES)
def test_matches_torch(ours, ours_kw, ref, ref_kw):
    compare_trajectories(nnopt_variants(ours, **ours_kw), torch_variants(ref, **ref_kw))


GROUP_CASES = [
    pytest.param(
        nnopt.SGD,
        [dict(lr=0.1, momentum=0.9, nesterov=True), dict(lr=0.01, l2=0.1)],
        torch.optim.SGD,
        [dict(lr=0.1, momentum=0.9, nesterov=True), dict(lr=0.01, weight_decay=0.1)],
        dict(lr=0.05),
        id="sgd",
    ),
    pytest.param(
        nnopt.Adam,
        [dict(lr=0.02, amsgrad=True), dict(betas=(0.5, 0.9), weight_decay=0.2)],
        torch.optim.Adam,
        [dict(lr=0.02, amsgrad=True), dict(betas=(0.5, 0.9), weight_decay=0.2)],
        dict(lr=0.01, decoupled_weight_decay=True),
        id="adam",
    ),
    pytest.param(
        nnopt.RMSProp,
        [dict(centered=True), dict(momentum=0.5, lr=0.05, l2=0.01)],
        torch.optim.RMSprop,
        [dict(centered=True), dict(momentum=0.5, lr=0.05, weight_decay=0.01)],
        dict(lr=0.01, rho=0.95, eps_inside_sqrt=False),
        id="rmsprop",
    ),
    pytest.param(
        nnopt.AdaGrad,
        [dict(lr=0.3), dict(eps=1e-3, l2=0.1)],
        torch.optim.Adagrad,
        [dict(lr=0.3), dict(eps=1e-3, weight_decay=0.1)],
        # torch.optim.Adagrad reads initial_accumulator_value from its constructor only (a
        # per-group value is ignored), so it is shared here; nnopt's per-group value is
        # checked against the float64 reference in test_optim_reference.py.
        dict(lr=0.1, initial_accumulator_value=0.5),
        id="adagrad",
    ),
]


def _splitter(group_kw):
    """Params [0, 2, 4] in the first group, [1, 3] in the second, each with its options."""
    return lambda ps: [dict(params=ps[0::2], **group_kw[0]), dict(params=ps[1::2], **group_kw[1])]


@pytest.mark.parametrize(("ours", "ours_groups", "ref", "ref_groups", "shared"), GROUP_CASES)
def test_param_groups_match_torch(ours, ours_groups, ref, ref_groups, shared):
    names = {"rho": "alpha"}
    ref_shared = {names.get(k, k): v for k, v in shared.items() if k != "eps_inside_sqrt"}
    if ref_shared.get("decoupled_weight_decay") and not torch_has("Adam", "decoupled_weight_decay"):
        # An older torch's Adam has no decoupled decay: its AdamW is that rule (with Adam's
        # default weight_decay, 0, made explicit: AdamW's is 1e-2).
        del ref_shared["decoupled_weight_decay"]
        ref, ref_shared = torch.optim.AdamW, {"weight_decay": 0, **ref_shared}
    compare_trajectories(
        on_groups(nnopt_variants(ours, **shared), _splitter(ours_groups)),
        on_groups(torch_variants(ref, **ref_shared), _splitter(ref_groups)),
    )
