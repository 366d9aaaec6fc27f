"""The group kernel's kept table (``group_kernel.Table``): reused only while every tensor
behind it is unchanged. Each test changes one thing between two steps, the way a user can,
and holds the optimizer bit for bit to a twin that builds its table afresh at every step (the
path every other test checks), and both to torch.optim.SGD to float32 rounding."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import nnopt
from nnopt.optim import group_kernel
from nnopt.optim.kernels import cpu

SHAPES = [(5, 5), (5,), (3, 4, 2), (7,)]


OPTIONS = dict(lr=0.1, momentum=0.9, weight_decay=0.01)


def trio() -> tuple[list[torch.optim.Optimizer], list[list[torch.nn.Parameter]]]:
    """nnopt (table kept), nnopt (table rebuilt every step), torch.optim.SGD, on equal copies."""
    gen = torch.Generator().manual_seed(0)
    first = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in SHAPES]
    params = [first] + [[torch.nn.Parameter(p.detach().clone()) for p in first] for _ in "ab"]
    opts = [nnopt.SGD(params[0], **OPTIONS), nnopt.SGD(params[1], **OPTIONS)]
    opts.append(torch.optim.SGD(params[2], foreach=False, **OPTIONS))
    return opts, params


def grads(params: list[list[torch.nn.Parameter]], seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for same in zip(*params, strict=True):
        grad = torch.randn(same[0].shape, generator=gen)
        for p in same:
            p.grad = grad.clone()


def step_and_compare(opts: list, params: list) -> None:
    opts[1].__dict__.pop("_group_tables", None)  # the twin builds its table afresh
    for opt in opts:
        opt.step()
    for kept, afresh, torch_ in zip(*params, strict=True):
        torch.testing.assert_close(kept.detach(), afresh.detach(), rtol=0, atol=0)
        torch.testing.assert_close(kept.detach(), torch_.detach(), rtol=1e-6, atol=1e-6)


def both(change: Callable[[torch.optim.Optimizer, list], None], steps: int = 4) -> nnopt.SGD:
    """Step both, apply ``change`` to each after step 2, step on; equal after every step."""
    if not cpu.available():
        pytest.skip("native kernels unavailable")
    opts, params = trio()
    for step in range(steps):
        if step == 2:
            for opt, ps in zip(opts, params, strict=True):
                change(opt, ps)
        grads(params, step)
        step_and_compare(opts, params)
    return opts[0]


def test_the_table_is_kept_and_reused(monkeypatch) -> None:
    opt = both(lambda opt, params: None)
    assert len(opt._group_tables) == 1
    reused = []
    real = group_kernel.Table.reuse
    monkeypatch.setattr(
        group_kernel.Table, "reuse", lambda self, *a: reused.append(real(self, *a)) or reused[-1]
    )
    params = opt.param_groups[0]["params"]
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    assert reused == [True]


def test_new_parameter_data() -> None:
    def change(opt, params):
        with torch.no_grad():
            params[0].data = params[0].data.clone() * 0.5

    both(change)


def test_transposed_in_place_parameter() -> None:
    # Same storage, same pointer, other strides: the kernel would pair the wrong elements.
    def change(opt, params):
        with torch.no_grad():
            params[0].t_()

    both(change)


def test_state_reset_for_one_parameter() -> None:
    def change(opt, params):
        opt.state[params[1]] = {}

    both(change)


def test_state_tensor_replaced() -> None:
    def change(opt, params):
        opt.state[params[2]]["momentum_buffer"] = torch.zeros(SHAPES[2])

    both(change)


def test_state_tensor_data_replaced() -> None:
    def change(opt, params):
        buf = opt.state[params[3]]["momentum_buffer"]
        buf.data = torch.full_like(buf, 0.25)

    both(change)


def test_a_parameter_without_gradient() -> None:
    if not cpu.available():
        pytest.skip("native kernels unavailable")
    opts, params = trio()
    for step in range(4):
        grads(params, step)
        if step == 2:
            for ps in params:
                ps[1].grad = None
        step_and_compare(opts, params)


def test_a_parameter_swapped_in_the_group() -> None:
    def change(opt, params):
        fresh = torch.nn.Parameter(torch.ones(SHAPES[0]))
        params[0] = fresh
        opt.param_groups[0]["params"][0] = fresh

    both(change)


def test_options_changed() -> None:
    def change(opt, params):
        opt.param_groups[0]["momentum"] = 0.5
        opt.param_groups[0]["nesterov"] = True

    both(change)
