"""Per-tensor scalar state (``Optimizer.scalar_state``; NAdam's ``mu_product``): kept as torch
keeps it, across layouts, checkpoints and the twin, and refused where it has no place yet."""

from __future__ import annotations

import copy

import pytest
import torch

import nnopt
from nnopt.distributed.sharded import ShardedOptimizer


def steps(opt: torch.optim.Optimizer, params: list, count: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for _ in range(count):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen).to(p.dtype)
        opt.step()


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
@pytest.mark.parametrize("flat", [False, True])
def test_a_loaded_product_keeps_its_dtype_and_resumes_bit_for_bit(dtype, flat) -> None:
    """torch casts every loaded state tensor but "step" to its parameter's dtype; nnopt keeps
    mu_product as saved (float32), so a resumed run is the uninterrupted one exactly."""
    start = [torch.randn(4, 3).to(dtype), torch.randn(5).to(dtype)]
    ref = [torch.nn.Parameter(t.clone()) for t in start]
    ref_opt = nnopt.NAdam(ref, lr=0.01, flat=flat)
    steps(ref_opt, ref, 3, seed=0)
    resumed = [torch.nn.Parameter(p.detach().clone()) for p in ref]
    steps(ref_opt, ref, 3, seed=1)

    first = [torch.nn.Parameter(t.clone()) for t in start]
    first_opt = nnopt.NAdam(first, lr=0.01, flat=flat)
    steps(first_opt, first, 3, seed=0)
    opt = nnopt.NAdam(resumed, lr=0.01, flat=flat)
    opt.load_state_dict(copy.deepcopy(first_opt.state_dict()))
    assert {opt.state[p]["mu_product"].dtype for p in resumed} == {torch.float32}
    steps(opt, resumed, 3, seed=1)
    for a, b in zip(resumed, ref, strict=True):
        assert torch.equal(a, b)
        assert torch.equal(opt.state[a]["mu_product"], ref_opt.state[b]["mu_product"])


def test_flat_runs_split_where_products_differ() -> None:
    """Two tensors of one flat bucket with the same step but different loaded products are
    stepped each with its own (as per tensor), not the first one's for both."""
    start = [torch.randn(6), torch.randn(7)]
    runs = []
    for flat in (False, True):
        params = [torch.nn.Parameter(t.clone()) for t in start]
        opt = nnopt.NAdam(params, lr=0.01, flat=flat)
        steps(opt, params, 2, seed=0)
        state = opt.state_dict()
        state["state"][1]["mu_product"] = torch.tensor(0.123)  # as if changed in torch
        opt.load_state_dict(state)
        steps(opt, params, 2, seed=1)
        runs.append((params, [opt.state[p]["mu_product"].item() for p in params]))
    (loose, loose_products), (flat, flat_products) = runs
    assert flat_products == loose_products and loose_products[0] != loose_products[1]
    for a, b in zip(flat, loose, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_torch_reads_the_product_nnopt_wrote() -> None:
    params = [torch.nn.Parameter(torch.randn(3))]
    opt = nnopt.NAdam(params, flat=True)
    steps(opt, params, 4, seed=0)
    twin = torch.optim.NAdam([torch.nn.Parameter(params[0].detach().clone())])
    twin.load_state_dict(opt.state_dict())
    (state,) = twin.state.values()
    assert state["mu_product"].shape == () and state["step"].item() == 4.0
    assert state["mu_product"].item() == opt.state[params[0]]["mu_product"].item()


def test_sharded_state_refuses_a_scalar_by_name() -> None:
    opt = nnopt.NAdam([torch.nn.Parameter(torch.zeros(3))])
    with pytest.raises(ValueError, match="NAdam keeps per-tensor scalars \\(mu_product\\)"):
        ShardedOptimizer(opt)


@pytest.mark.parametrize(
    "build",
    [
        lambda ps: nnopt.Muon([p for p in ps if p.ndim == 2], lr=0.01),
        lambda ps: nnopt.Adafactor(ps, lr=0.01),
        lambda ps: nnopt.SOAP(ps, lr=0.01),
    ],
)
def test_sharded_state_refuses_rules_that_read_whole_parameters(build) -> None:
    """A shard holds a slice of the flat buffer: a matrix rule would see part of a matrix."""
    params = [torch.nn.Parameter(torch.ones(4, 3)), torch.nn.Parameter(torch.ones(3))]
    with pytest.raises(ValueError, match="reads each parameter whole"):
        ShardedOptimizer(build(params))
