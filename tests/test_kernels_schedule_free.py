"""Schedule-free's native kernels against their eager rules (``test_kernels.py``'s method:
fresh random tensors, the eager composition on one copy and the kernel on the other, every
dtype, size and regularization there)."""

from __future__ import annotations

import itertools

import pytest
import torch
from test_kernels import (
    DTYPES,
    REGULARIZATION,
    SIZES,
    check,
    clones,
    draw,
    eager_apply,
    native,
    ref,
)

from nnopt.optim import rules
from nnopt.optim.kernels import cpu

__all__ = ["native"]  # (the fixture that builds the library, used here too)

# ckp1 0.3 and 0.7 take lerp's two formulas; 1.0 is the first step (y <- z exactly).
WEIGHTS = (0.3, 0.7, 1.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_schedule_free_sgd_matches_eager(n: int, dtype: torch.dtype) -> None:
    for ckp1, y_decay, reg in itertools.product(WEIGHTS, (0.0, 0.1), REGULARIZATION):
        p, g, z = draw(n, dtype), draw(n, dtype), draw(n, dtype)
        ep, ez = clones(p, z)
        options = dict(lr=0.05, momentum=0.9, y_decay=y_decay, ckp1=ckp1)
        assert cpu.step_one("schedule_free_sgd", p, g, {"z": z}, **options, **reg)
        eager_apply(rules.schedule_free_sgd_, ep, ref(g), ez, **options, **reg)
        check(dtype, [p, z], [ep, ez])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_schedule_free_adamw_matches_eager(n: int, dtype: torch.dtype) -> None:
    for ckp1, y_decay, beta2, reg in itertools.product(
        WEIGHTS, (0.0, 0.1), (0.999, 0.5), REGULARIZATION
    ):
        p, g, z = draw(n, dtype), draw(n, dtype), draw(n, dtype)
        v = draw(n, dtype, positive=True) * 0.01
        ep, ez, ev = clones(p, z, v)
        options = dict(lr=1e-3, beta1=0.9, beta2=beta2, eps=1e-8, y_decay=y_decay, ckp1=ckp1,
                       bias_correction2=1 - beta2**3)  # fmt: skip
        state = {"z": z, "exp_avg_sq": v}
        assert cpu.step_one("schedule_free_adamw", p, g, state, **options, **reg)
        eager_apply(rules.schedule_free_adamw_, ep, ref(g), ez, ev, **options, **reg)
        check(dtype, [p, z, v], [ep, ez, ev])
