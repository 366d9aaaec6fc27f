"""Validation at construction: every bad hyperparameter or parameter list gets a
ValueError naming the argument and the allowed range."""

from __future__ import annotations

import math

import pytest
import torch
from optim_helpers import make_params

import nnopt

# --- validation ----------------------------------------------------------------------------

INVALID = [
    (nnopt.SGD, dict(lr=-0.1), "lr"),
    (nnopt.Adam, dict(lr=-1e-3), "lr"),
    (nnopt.Adam, dict(lr=float("nan")), "lr"),
    (nnopt.SGD, dict(lr="0.1"), "lr"),
    (nnopt.Adam, dict(eps=-1e-8), "eps"),
    (nnopt.Adam, dict(eps=0.0), "eps"),
    (nnopt.AdaGrad, dict(eps=-1.0), "eps"),
    (nnopt.RMSProp, dict(eps=-1.0), "eps"),
    (nnopt.AdaGrad, dict(initial_accumulator_value=-1.0), "initial_accumulator_value"),
    (nnopt.SGD, dict(lr=0.1, l1=-0.1), "l1"),
    (nnopt.Adam, dict(l2=-0.1), "l2"),
    (nnopt.RMSProp, dict(weight_decay=-0.1), "weight_decay"),
    (nnopt.AdamW, dict(weight_decay=math.inf), "weight_decay"),
    (nnopt.SGD, dict(lr=0.1, momentum=1.0), "momentum"),
    (nnopt.SGD, dict(lr=0.1, momentum=-0.1), "momentum"),
    (nnopt.RMSProp, dict(momentum=1.5), "momentum"),
    (nnopt.Adam, dict(betas=(1.0, 0.999)), r"betas\[0\]"),
    (nnopt.Adam, dict(betas=(-0.1, 0.999)), r"betas\[0\]"),
    (nnopt.AdamW, dict(betas=(0.9, 1.0)), r"betas\[1\]"),
    (nnopt.Adam, dict(betas=(0.9,)), "betas"),
    (nnopt.RMSProp, dict(rho=1.0), "rho"),
    (nnopt.RMSProp, dict(rho=-0.5), "rho"),
    (nnopt.SGD, dict(lr=0.1, nesterov=True), "nesterov"),
    (nnopt.Adam, dict(amsgrad="yes"), "amsgrad"),
    (nnopt.SGD, dict(lr=0.1, flat="yes"), "flat"),
    (nnopt.Adam, dict(flat=1), "flat"),
]


@pytest.mark.parametrize(
    ("cls", "kwargs", "name"), INVALID, ids=[f"{c.__name__}-{n}" for c, _, n in INVALID]
)
def test_invalid_hyperparameter_names_the_argument(cls, kwargs, name):
    with pytest.raises(ValueError, match=name):
        cls(make_params([(3,)]), **kwargs)


@pytest.mark.parametrize("cls", [nnopt.SGD, nnopt.Adam])
def test_invalid_value_in_a_param_group(cls):
    a, b = make_params([(2,), (3,)])
    with pytest.raises(ValueError, match="lr"):
        cls([dict(params=[a]), dict(params=[b], lr=-1.0)], lr=0.1)
    opt = cls([a], lr=0.1)
    with pytest.raises(ValueError, match="l1"):
        opt.add_param_group(dict(params=[b], l1=-1.0))


def test_empty_params():
    with pytest.raises(ValueError, match="params"):
        nnopt.Adam([])
    with pytest.raises(ValueError, match="params"):
        nnopt.SGD(iter([]), lr=0.1)


def test_param_in_two_groups():
    a, b = make_params([(2,), (3,)])
    with pytest.raises(ValueError, match="parameter group"):
        nnopt.SGD([dict(params=[a, b]), dict(params=[b])], lr=0.1)
    opt = nnopt.Adam([a])
    with pytest.raises(ValueError, match="parameter group"):
        opt.add_param_group(dict(params=[a]))


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_integer_param(dtype):
    with pytest.raises(ValueError, match=r"params\[1\].*dtype"):
        nnopt.Adam([torch.zeros(3, requires_grad=True), torch.zeros(3, dtype=dtype)])


def test_flat_true_steps_what_it_cannot_pack_one_by_one():
    p = torch.ones(4, 4).t().requires_grad_(True)  # not contiguous: stays loose
    opt = nnopt.SGD([p], lr=0.1, flat=True)
    assert opt.flat_buffers() == []
    p.grad = torch.ones(4, 4)
    opt.step()
    torch.testing.assert_close(p.detach(), torch.full((4, 4), 0.9))
