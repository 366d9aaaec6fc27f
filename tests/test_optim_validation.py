"""Validation at construction: every bad hyperparameter or parameter list gets a
ValueError naming the argument and the allowed range."""

from __future__ import annotations

import pytest
import torch
from optim_helpers import make_params

import nnopt

# --- validation ----------------------------------------------------------------------------


def test_nesterov_needs_momentum():
    """Each option's own range is test_optim_cases_problems.py's (every row, every argument);
    this one is a rule between two options."""
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        nnopt.SGD(make_params([(3,)]), lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0 and dampening = 0"):
        nnopt.SGD(make_params([(3,)]), lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)


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
