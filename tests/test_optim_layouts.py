"""Parameters flat buffers cannot hold: sparse gradients, complex parameters, non-contiguous
tensors, mixed dtypes in one group."""

from __future__ import annotations

import copy

import pytest
import torch
from model_helpers import (
    FLAT_IDS,
    twin_cases,
)
from optim_helpers import FLAT_MODES, max_rel_diff
from torch import nn

import nnopt

# --- sparse and complex parameters ------------------------------------------------------------


@pytest.mark.parametrize("flat", FLAT_MODES, ids=FLAT_IDS)
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sparse_embedding_grads_sgd(momentum, flat):
    torch.manual_seed(0)
    a = nn.Embedding(10, 4, sparse=True)
    b = copy.deepcopy(a)
    opt = nnopt.SGD(a.parameters(), lr=0.1, momentum=momentum, flat=flat)
    topt = torch.optim.SGD(b.parameters(), lr=0.1, momentum=momentum)
    gen = torch.Generator().manual_seed(3)
    for _ in range(5):
        idx = torch.randint(0, 10, (6,), generator=gen)
        for emb, o in ((a, opt), (b, topt)):
            o.zero_grad()
            emb(idx).pow(2).sum().backward()
            o.step()
        torch.testing.assert_close(a.weight, b.weight, rtol=1e-6, atol=1e-7)


COMPLEX_CASES = [
    pytest.param(nnopt.Adam, dict(lr=0.01), torch.optim.Adam, dict(lr=0.01), id="adam"),
    pytest.param(
        nnopt.AdamW,
        dict(lr=0.01, amsgrad=True, weight_decay=0.1),
        torch.optim.AdamW,
        dict(lr=0.01, amsgrad=True, weight_decay=0.1),
        id="adamw-amsgrad",
    ),
    pytest.param(
        nnopt.SGD,
        dict(lr=0.05, momentum=0.9, l2=0.01),
        torch.optim.SGD,
        dict(lr=0.05, momentum=0.9, weight_decay=0.01),
        id="sgd",
    ),
    pytest.param(
        nnopt.AdaGrad,
        dict(lr=0.1, initial_accumulator_value=0.1),
        torch.optim.Adagrad,
        dict(lr=0.1, initial_accumulator_value=0.1),
        id="adagrad",
    ),
    pytest.param(
        nnopt.RMSProp,
        dict(lr=0.01, eps_inside_sqrt=False, centered=True, momentum=0.5),
        torch.optim.RMSprop,
        dict(lr=0.01, alpha=0.9, centered=True, momentum=0.5),
        id="rmsprop",
    ),
]


@pytest.mark.parametrize("flat", FLAT_MODES, ids=FLAT_IDS)
@pytest.mark.parametrize(("ours", "ours_kw", "ref", "ref_kw"), COMPLEX_CASES)
def test_complex_params_match_torch(ours, ours_kw, ref, ref_kw, flat):
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(3, 4, generator=gen)
    z = torch.complex(real, torch.randn(3, 4, generator=gen)).requires_grad_(True)
    w = torch.randn(5, generator=gen).requires_grad_(True)  # a real param alongside
    z2, w2 = z.detach().clone().requires_grad_(True), w.detach().clone().requires_grad_(True)
    opt, topt = ours([z, w], flat=flat, **ours_kw), ref([z2, w2], **ref_kw)
    for _ in range(10):
        gz = torch.complex(torch.randn(3, 4, generator=gen), torch.randn(3, 4, generator=gen))
        gw = torch.randn(5, generator=gen)
        for params, o in (((z, w), opt), ((z2, w2), topt)):
            o.zero_grad()
            params[0].grad, params[1].grad = gz.clone(), gw.clone()
            o.step()
        assert max_rel_diff([z, w], [z2, w2]) < 1e-6


def test_flat_true_keeps_complex_params_loose():
    z = torch.zeros(3, dtype=torch.complex64, requires_grad=True)
    w = torch.zeros(4, requires_grad=True)
    opt = nnopt.Adam([z, w], flat=True)
    assert [b.params for b in opt.flat_buffers()] == [[w]]


# --- parameters flat buffers cannot hold --------------------------------------------------------

LAYOUT_CASES = twin_cases()


@pytest.mark.parametrize("kernels", ["auto", "eager"])
@pytest.mark.parametrize("flat", FLAT_MODES, ids=FLAT_IDS)
@pytest.mark.parametrize(("ours", "ours_kw", "ref", "ref_kw"), LAYOUT_CASES)
def test_non_contiguous_param_with_assigned_grad(ours, ours_kw, ref, ref_kw, flat, kernels):
    """A transposed parameter (stepped tensor by tensor) whose gradient the user assigns in
    ordinary contiguous layout: elements must be paired by index, not by memory position."""
    gen = torch.Generator().manual_seed(0)
    p = torch.randn(4, 3, generator=gen).t().requires_grad_(True)
    w = torch.randn(5, generator=gen).requires_grad_(True)
    q, v = p.detach().clone().requires_grad_(True), w.detach().clone().requires_grad_(True)
    assert not p.is_contiguous() and not q.is_contiguous()
    opt, topt = ours([p, w], flat=flat, **ours_kw), ref([q, v], **ref_kw)
    opt.kernels = kernels
    for _ in range(4):
        gp, gw = torch.randn(3, 4, generator=gen), torch.randn(5, generator=gen)
        for (a, b), o in (((p, w), opt), ((q, v), topt)):
            a.grad, b.grad = gp.clone(), gw.clone()
            o.step()
        assert max_rel_diff([p, w], [q, v]) < 1e-6


@pytest.mark.parametrize("flat", FLAT_MODES, ids=FLAT_IDS)
def test_mixed_dtypes_in_one_group(flat):
    """float32 and float64 parameters in one group: one flat bucket per dtype."""
    gen = torch.Generator().manual_seed(0)
    a = [
        torch.randn(4, generator=gen).requires_grad_(True),
        torch.randn(3, generator=gen, dtype=torch.float64).requires_grad_(True),
        torch.randn(5, generator=gen).requires_grad_(True),
    ]
    b = [p.detach().clone().requires_grad_(True) for p in a]
    opt, topt = nnopt.Adam(a, lr=0.1, flat=flat), torch.optim.Adam(b, lr=0.1)
    assert len(opt.flat_buffers()) == (2 if flat else 0)
    for _ in range(5):
        grads = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in a]
        for params, o in ((a, opt), (b, topt)):
            for p, g in zip(params, grads, strict=True):
                p.grad = g.clone()
            o.step()
        assert max_rel_diff(a, b) < 1e-6
    assert a[1].dtype == torch.float64
