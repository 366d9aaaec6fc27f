"""The GPU path: nnopt on CUDA against torch.optim on the CPU, step by step.

Runs only where CUDA is present (CI and the project's machine have none; these tests are for
whoever runs the suite on a GPU). On CUDA the native CPU kernels step aside: the flat path
uses PyTorch's fused CUDA kernels where they are the rule, the eager rule otherwise.
"""

from __future__ import annotations

import pytest
import torch
from optim_case import build
from optim_cases import CASES, set_id
from optim_helpers import SHAPES, clone_params, grad_stream, make_params, max_rel_diff

import nnopt
from nnopt.recipe import Recipe
from nnopt.training import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


# Every option set of every row with a torch twin that the twin takes (optim_cases.py).
TWIN_SETS = [(c, i) for c in CASES.values() for i in c.twin_sets()]


@pytest.mark.parametrize("pair", TWIN_SETS, ids=set_id)
@pytest.mark.parametrize("flat", [True, False])
def test_cuda_matches_torch_on_cpu(pair, flat):
    case, index = pair
    sets = [case.option_sets[index]]
    start = make_params(SHAPES)
    on_gpu = [p.detach().cuda().requires_grad_(True) for p in start]
    on_cpu = clone_params(start)
    opt = build(case, on_gpu, sets, flat=flat, twin=False)
    ref_opt = build(case, on_cpu, sets, twin=True)
    for t, grads in enumerate(grad_stream(SHAPES, 40)):
        for p, q, g in zip(on_gpu, on_cpu, grads, strict=True):
            p.grad, q.grad = g.cuda(), g.clone()
        opt.step()
        ref_opt.step()
        diff = max_rel_diff([p.cpu() for p in on_gpu], on_cpu)
        # float32 on two devices: different summation orders and fused FMAs.
        assert diff < 1e-4, f"step {t + 1}: max relative difference {diff:.3g}"


def test_flat_buffers_live_on_the_gpu():
    params = [p.detach().cuda().requires_grad_(True) for p in make_params(SHAPES)]
    opt = nnopt.Adam(params, lr=1e-2)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    (bucket,) = opt.flat_buffers()
    assert bucket.param.is_cuda and bucket.grad.is_cuda
    assert all(v.is_cuda for v in bucket.state.values())
    assert all(p.data_ptr() == ptr for p, ptr in zip(params, bucket.param_ptrs, strict=True))


def test_a_recipe_trains_on_cuda(tmp_path):
    recipe = Recipe.from_dict(
        {
            "name": "cuda",
            "data": {"name": "digits"},
            "model": {"kind": "mlp", "hidden": [32]},
            "optimizer": {"name": "adam", "lr": 1e-2},
            "train": {"steps": 200, "eval_every": 100, "device": "cuda"},
        }
    )
    result = train(recipe, tmp_path, quiet=True)
    assert result.summary["final"]["val_accuracy"] > 0.85


@pytest.mark.parametrize("update", ["kahan", "stochastic"])
def test_compact_storage_on_cuda_matches_the_cpu_kernel(update):
    # bfloat16 weights, 8-bit moments: the eager path (PyTorch ops) on the GPU against the
    # native kernel on the CPU, same seeds (stochastic rounding draws the same bits).
    torch.manual_seed(0)
    start = torch.randn(3, 5000).to(torch.bfloat16)
    results = []
    for device in ("cuda", "cpu"):
        torch.manual_seed(1)
        params = [torch.nn.Parameter(row.clone().to(device)) for row in start]
        opt = nnopt.AdamW(params, lr=1e-2, state_dtype="int8", param_update=update)
        gen = torch.Generator().manual_seed(2)
        for _ in range(10):
            for p in params:
                p.grad = torch.randn(p.shape, generator=gen).to(torch.bfloat16).to(device)
            opt.step()
        assert opt.state[params[0]]["exp_avg"].dtype == torch.int8
        results.append(torch.stack([p.detach().float().cpu() for p in params]))
    gpu, cpu = results
    close = (gpu - cpu).abs() <= 2.0**-7 * cpu.abs() + 1e-6  # one bfloat16 ulp
    assert close.float().mean() > 0.99
