"""The drop-in promise, step by step: the very same call on nnopt's class and torch's
(positional arguments, defaults, Tensor lr, the fused flag) gives the same numbers.

Every row against its torch twin under each of its option sets and in param groups, in every
layout and kernel mode, is ``test_optim_cases.py::test_matches_torch_twin``.
"""

from __future__ import annotations

import pytest
import torch
from optim_helpers import compare_trajectories, nnopt_variants, torch_variants

import nnopt

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
