"""NAdam's and RAdam's native kernels against their eager rules (as ``test_kernels.py`` does for
the seed's rules): every dtype, size and regularization, steps on both sides of RAdam's
rectification threshold, and NAdam's float32 ``mu_product`` carried exactly."""

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
    native,  # noqa: F401  (the fixture: skips where the library cannot be built)
    present,
    ref,
)

from nnopt.optim import rules
from nnopt.optim.kernels import blocks, build, cpu


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_nadam_matches_eager(n: int, dtype: torch.dtype) -> None:
    # beta1=0.2 takes lerp's second formula; step 7 with a product carried from earlier steps.
    for (step, product), beta1, psi, reg in itertools.product(
        ((1, 1.0), (7, 0.2371)), (0.9, 0.2), (4e-3, 0.05), REGULARIZATION
    ):
        p, g, m = draw(n, dtype), draw(n, dtype), draw(n, dtype) * 0.1
        v = draw(n, dtype, positive=True) * 0.01
        ep, em, ev = clones(p, m, v)
        mu_product, eager_product = torch.tensor(product), torch.tensor(product)
        options = dict(step=step, lr=1e-3, beta1=beta1, beta2=0.999, eps=1e-8, momentum_decay=psi)
        state = dict(exp_avg=m, exp_avg_sq=v, mu_product=mu_product)
        assert cpu.step_one("nadam", p, g, state, **options, **reg)
        with torch.no_grad():  # as a step runs it (with grad on, it is a differentiable one)
            eager_apply(rules.nadam_, ep, ref(g), em, ev, eager_product, **options, **reg)
        check(dtype, present(p, m, v), present(ep, em, ev))
        assert mu_product.item() == eager_product.item()  # torch's float32 rounding, exactly


def test_nadam_product_is_torchs_over_many_steps() -> None:
    """The kernel's running product, step after step, is torch.optim.NAdam's bit for bit."""
    p, theirs = torch.zeros(3), torch.nn.Parameter(torch.zeros(3))
    twin = torch.optim.NAdam([theirs], momentum_decay=0.03)
    state = dict(exp_avg=torch.zeros(3), exp_avg_sq=torch.zeros(3), mu_product=torch.tensor(1.0))
    for step in range(1, 301):
        theirs.grad = torch.ones(3)
        twin.step()
        options = dict(step=step, lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, momentum_decay=0.03)
        assert cpu.step_one("nadam", p, torch.ones(3), state, **options)
        assert state["mu_product"].item() == twin.state[theirs]["mu_product"].item(), step


def test_nadam_kernel_leaves_a_float64_product_to_the_eager_rule() -> None:
    """(A float64 default dtype gives float64 counters; the kernel reads float32 only.)"""
    state = dict(exp_avg=torch.zeros(3), exp_avg_sq=torch.zeros(3))
    state["mu_product"] = torch.tensor(1.0, dtype=torch.float64)
    options = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, momentum_decay=4e-3)
    assert not cpu.step_one("nadam", torch.zeros(3), torch.ones(3), state, **options)
    assert state["mu_product"].item() == 1.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_radam_matches_eager(n: int, dtype: torch.dtype) -> None:
    # beta2=0.99: rho_t <= 5 up to step 5 (momentum SGD, d = 1), rectified from step 6.
    for step, beta1, beta2, reg in itertools.product(
        (1, 5, 6, 40), (0.9, 0.2), (0.999, 0.99), REGULARIZATION
    ):
        p, g, m = draw(n, dtype), draw(n, dtype), draw(n, dtype) * 0.1
        v = draw(n, dtype, positive=True) * 0.01
        ep, em, ev = clones(p, m, v)
        options = dict(step=step, lr=1e-3, beta1=beta1, beta2=beta2, eps=1e-8)
        assert cpu.step_one("radam", p, g, dict(exp_avg=m, exp_avg_sq=v), **options, **reg)
        eager_apply(rules.radam_, ep, ref(g), em, ev, **options, **reg)
        check(dtype, present(p, m, v), present(ep, em, ev))


def test_radam_rectification_starts_where_torch_says() -> None:
    """rho_t > 5 first at step 6 for beta2 = 0.999 and 0.99 (torch's threshold)."""
    for beta2 in (0.999, 0.99):
        rectified = [rules.radam.rectification(beta2, t) is not None for t in range(1, 9)]
        assert rectified == [False] * 5 + [True] * 3, beta2


def test_nadam_block_points_to_its_scalar() -> None:
    """mu_product is a scalar(name) field: a pointer the table's rows fill, read as float32."""
    found = blocks.read(build.load())
    assert isinstance(found, dict) and {"nadam", "radam"} <= set(found)
    assert blocks.layout(found["nadam"]).startswith(
        "p:ptr,g:ptr,exp_avg:ptr,exp_avg_sq:ptr,mu_product:scalar,l2_on:i32"
    )
    assert blocks.pointer_names(found["nadam"]) == ("exp_avg", "exp_avg_sq", "mu_product")
    assert blocks.scalar_names(found["nadam"]) == ("mu_product",)
    assert blocks.scalar_names(found["radam"]) == ()
