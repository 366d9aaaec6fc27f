"""The group kernel (``group_kernel.step_many``): a whole param group in one native call.

Each case steps one mixed group (sizes from empty to above the kernels' split and fused
thresholds, float32 and float64 together, a parameter without a gradient, one whose layout
the kernel cannot take) with the default kernels and with the eager rules, and compares every
parameter, state tensor and step counter. Then the guards: one call per dtype, state of the
wrong size never reaches the kernel, plain SGD is torch's own loop bit for bit.
"""

from __future__ import annotations

import warnings

import optim_case
import optim_cases
import pytest
import torch

import nnopt
from nnopt.optim import group_kernel
from nnopt.optim.kernels import build, cpu

SIZES = [0, 1, 33, 1001, (1 << 14) + 77, (1 << 16) + 5, group_kernel.LARGE + 3]

# Every row of the case table under its first two option sets (those hold the options the
# kernels take; see optim_cases.py).
CASES = {
    f"{case.row}-{index}": (
        lambda ps, case=case, index=index: optim_case.build(case, ps, [case.option_sets[index]])
    )
    for case in optim_cases.CASES.values()
    if case.group_kernel
    for index in (0, 1)
}


@pytest.fixture(scope="module", autouse=True)
def native() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not cpu.available():
            pytest.skip(f"native kernels unavailable: {build.failure_reason()}")


def mixed_group(seed: int) -> list[torch.nn.Parameter]:
    """Parameters of every size in float32, two in float64, one frozen, one transposed."""
    gen = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(n, generator=gen)) for n in SIZES]
    params += [torch.nn.Parameter(torch.randn(n, generator=gen).double()) for n in (5, 1001)]
    params.append(torch.nn.Parameter(torch.randn(7, generator=gen)))  # never gets a gradient
    params.append(torch.nn.Parameter(torch.randn(40, 30, generator=gen).t()))  # not contiguous
    return params


def set_grads(params: list[torch.nn.Parameter], seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for p in params[:-2] + params[-1:]:  # all but the frozen one
        p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)


def run(make, kernels: str, steps: int = 4) -> tuple[list, torch.optim.Optimizer]:
    params = mixed_group(0)
    opt = make(params)
    opt.kernels = kernels
    for step in range(steps):
        set_grads(params, step + 1)
        opt.step()
    return params, opt


def compare(fast: tuple, slow: tuple, exact: bool) -> None:
    """Every parameter, state tensor and step counter of two runs: equal, or close."""
    (fast_params, fast_opt), (slow_params, slow_opt) = fast, slow
    for i, (a, b) in enumerate(zip(fast_params, slow_params, strict=True)):
        # float32 drifts apart by rounding over the steps (most in centered RMSprop, where
        # E - gbar^2 cancels); float64 agrees to its own rounding.
        tol = dict(rtol=1e-4, atol=1e-5) if a.dtype == torch.float32 else dict(rtol=1e-12, atol=0)
        tol = dict(rtol=0, atol=0) if exact else tol
        torch.testing.assert_close(a, b, **tol, msg=lambda m, i=i: f"param {i}: {m}")
        fast_state, slow_state = fast_opt.state.get(a, {}), slow_opt.state.get(b, {})
        assert fast_state.keys() == slow_state.keys(), i
        for key, value in slow_state.items():
            if key == "step":  # counted exactly, in the counter's own dtype
                assert fast_state[key].dtype == value.dtype
                assert fast_state[key].item() == value.item(), (i, key)
            else:
                torch.testing.assert_close(fast_state[key], value, **tol)
    assert torch.equal(fast_params[-2], mixed_group(0)[-2])  # the frozen parameter never moves


@pytest.mark.parametrize("name", list(CASES))
def test_group_kernel_matches_the_eager_rules(name: str) -> None:
    compare(run(CASES[name], "auto"), run(CASES[name], "eager"), exact=False)


# (plain SGD runs torch's foreach loop instead: test_plain_sgd_is_torchs_loop_bit_for_bit)
@pytest.mark.parametrize("name", [name for name in CASES if name != "sgd-0"])
def test_group_kernel_is_the_tensor_kernel_bit_for_bit(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = run(CASES[name], "native")
    monkeypatch.setattr(group_kernel, "step_many", lambda opt, group, how, params: params)
    one_by_one = run(CASES[name], "native")
    compare(group, one_by_one, exact=True)


def test_one_native_call_per_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = cpu.run_many
    monkeypatch.setattr(
        cpu, "run_many", lambda k, code, *a: calls.append(code) or real(k, code, *a)
    )
    params = [torch.nn.Parameter(torch.randn(100)) for _ in range(50)]
    params += [torch.nn.Parameter(torch.randn(100).double()) for _ in range(3)]
    opt = nnopt.Adam(params)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    assert sorted(calls) == [0, 1]  # float32 once, float64 once: not 53 calls
    assert all(opt.state[p]["step"].item() == 1.0 for p in params)


def test_state_of_the_wrong_size_never_reaches_the_kernel() -> None:
    p = torch.nn.Parameter(torch.randn(1000))
    opt = nnopt.Adam([p])
    p.grad = torch.ones_like(p)
    opt.step()
    opt.state[p]["exp_avg"] = torch.zeros(10)  # a kernel would write 1000 elements into 10
    with pytest.raises(RuntimeError, match="size"):
        opt.step()


def test_gradient_of_the_wrong_size_or_dtype_never_reaches_the_kernel() -> None:
    p = torch.nn.Parameter(torch.randn(1000))
    opt = nnopt.SGD([p], lr=0.1, momentum=0.9)
    p.grad = torch.ones_like(p)
    p.grad.data = torch.ones(10)  # torch lets .data change a gradient's size
    with pytest.raises(RuntimeError):
        opt.step()
    p.grad = torch.ones_like(p)
    p.grad.data = torch.ones(1000, dtype=torch.float64)  # ... and its dtype
    before = p.detach().clone()
    opt.step()  # the eager rule runs it (in float64 arithmetic), the kernel does not
    torch.testing.assert_close(p.detach(), before - 0.1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_plain_sgd_is_torchs_loop_bit_for_bit(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(n, generator=gen).to(dtype) for n in (3, 1000, 70_000)]
    grads = [torch.randn(t.shape, generator=gen).to(dtype) for t in start]
    ours = [torch.nn.Parameter(t.clone()) for t in start]
    theirs = [torch.nn.Parameter(t.clone()) for t in start]
    for params, opt in (
        (ours, nnopt.SGD(ours, lr=0.1)),
        (theirs, torch.optim.SGD(theirs, lr=0.1, foreach=False)),
    ):
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        opt.step()
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)


def test_float64_default_counts_in_float64() -> None:
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        p = torch.nn.Parameter(torch.randn(10))
        opt = nnopt.Adam([p])
        for _ in range(3):
            p.grad = torch.ones_like(p)
            opt.step()
        assert opt.state[p]["step"].dtype == torch.float64
        assert opt.state[p]["step"].item() == 3.0
    finally:
        torch.set_default_dtype(default)
