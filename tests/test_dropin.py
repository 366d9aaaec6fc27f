"""The drop-in promise, one repro of issue 10 per test: each failed on nnopt 0.1's main.

Every test runs the same thing through torch.optim and nnopt (or states what torch does) and
asserts the numbers; the heavy clients (Lightning, accelerate, FSDP2...) are in tests/clients.
"""

from __future__ import annotations

import copy
import io
import warnings

import pytest
import torch
from torch import nn

import nnopt
from nnopt.optim import table

# The torch twins of the table's rows, each once (a new twin is tested here from its row).
TWINS = sorted({row.twin for row in table.ROWS if row.twin})
# torch's Muon takes matrices only and has no foreach: its twin tests are optim_cases'.
ANY_SHAPE = [name for name in TWINS if name != "Muon"]
KWARGS = {"SGD": dict(lr=0.1, momentum=0.9), "Adagrad": dict(lr=0.1), "RMSprop": dict(lr=0.01)}


def pair(name, params_a, params_b, flat=False, **kwargs):
    kwargs = {**KWARGS.get(name, dict(lr=0.01)), **kwargs}
    ours = getattr(nnopt, name)(params_b, flat=flat, **kwargs)
    return getattr(torch.optim, name)(params_a, **kwargs), ours


def twin_params(*shapes, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    values = [torch.randn(s, generator=gen).to(dtype) for s in shapes]
    return [nn.Parameter(v.clone()) for v in values], [nn.Parameter(v.clone()) for v in values]


def feed(opts_params, steps, seed=1):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        grads = None
        for opt, params in opts_params:
            if grads is None:
                grads = [torch.randn(p.shape, generator=gen).to(p.dtype) for p in params]
            for p, g in zip(params, grads, strict=True):
                p.grad = g.clone()
            opt.step()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_sgd_half_precision_cpu_updates_every_element(dtype):
    p = nn.Parameter(torch.randn(1000).to(dtype))
    q = nn.Parameter(p.detach().clone())
    opt, ref = nnopt.SGD([p], lr=0.1), torch.optim.SGD([q], lr=0.1)
    for param in (p, q):
        param.grad = torch.ones_like(param)
    before = p.detach().clone()
    opt.step()
    ref.step()
    assert (p != before).sum().item() > 990
    torch.testing.assert_close(p, q, rtol=0, atol=0)


# weight_decay's meaning and state dicts crossing to torch and back, for every row with a
# twin and each of its option sets: test_optim_cases.py and test_optim_cases_state.py.


@pytest.mark.parametrize("name", ["Adam", "Adagrad", "RMSprop"])
def test_float_step_of_old_checkpoints_loads(name):
    a, b = twin_params((4,))
    ref, opt = pair(name, a, b)
    feed([(ref, a)], 2)
    state = copy.deepcopy(ref.state_dict())
    for s in state["state"].values():
        s["step"] = float(s["step"])  # torch < 1.12 saved a float
    b[0].data.copy_(a[0].detach())
    opt.load_state_dict(state)
    assert opt.state[b[0]]["step"].dtype == torch.float32
    feed([(ref, a), (opt, b)], 2, seed=3)
    torch.testing.assert_close(a[0], b[0], rtol=1e-5, atol=1e-6)


# --- the default layout: every parameter keeps its storage --------------------------------


@pytest.mark.parametrize("name", ANY_SHAPE)
def test_default_keeps_each_parameter_storage(name):
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    ptrs = [p.data_ptr() for p in model.parameters()]
    opt = getattr(nnopt, name)(model.parameters(), lr=0.01)
    model(torch.randn(5, 3)).sum().backward()
    opt.step()
    assert [p.data_ptr() for p in model.parameters()] == ptrs
    buffer = io.BytesIO()
    torch.save(model[1].state_dict(), buffer)  # the submodule alone, not a shared buffer
    assert len(buffer.getvalue()) < 2000


def test_shared_memory_model_is_stepped_in_place():
    model = nn.Linear(3, 2)
    model.share_memory()
    opt = nnopt.Adam(model.parameters(), lr=0.1)
    before = model.weight.detach().clone()
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    assert model.weight.is_shared()
    assert not torch.equal(model.weight.detach(), before)


def test_parameters_tied_through_data_stay_tied():
    a, b = nn.Parameter(torch.randn(4)), nn.Parameter(torch.zeros(4))
    b.data = a.data  # tied storage, two parameters
    opt = nnopt.SGD([a, b], lr=0.1)
    a.grad, b.grad = torch.ones(4), torch.ones(4)
    opt.step()
    assert a.data_ptr() == b.data_ptr()
    torch.testing.assert_close(a, b)


def test_parameters_that_view_one_base_update_the_base():
    base = torch.zeros(6)
    p, q = nn.Parameter(base[:3]), nn.Parameter(base[3:])
    opt = nnopt.SGD([p, q], lr=1.0)
    p.grad, q.grad = -torch.ones(3), -2 * torch.ones(3)
    opt.step()
    torch.testing.assert_close(base, torch.tensor([1.0, 1, 1, 2, 2, 2]))


@pytest.mark.parametrize("flat", [False, True])
def test_param_appended_to_a_group_is_stepped(flat):
    a, b = nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(2))
    opt = nnopt.SGD([a], lr=0.5, flat=flat)
    opt.param_groups[0]["params"].append(b)
    a.grad, b.grad = torch.ones(3), torch.ones(2)
    opt.step()
    torch.testing.assert_close(b.detach(), torch.full((2,), 0.5))


@pytest.mark.parametrize("flat", [False, True])
def test_zero_grad_sets_to_none_so_frozen_params_do_not_move(flat):
    a, b = nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(3))
    opt = nnopt.SGD([a, b], lr=0.1, momentum=0.9, weight_decay=0.1, flat=flat)
    a.grad, b.grad = torch.ones(3), torch.ones(3)
    opt.step()
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    frozen = b.detach().clone()
    a.grad = torch.ones(3)  # b took no part in this step
    opt.step()
    torch.testing.assert_close(b.detach(), frozen, rtol=0, atol=0)


@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.parametrize("name", ANY_SHAPE)
def test_duplicate_parameter_is_stepped_twice_like_torch(name, flat):
    """torch steps a parameter listed twice twice (and warns); so does nnopt, in flat buffers
    too (AdamW with flat=True once ended 3.4e-4 away: its bucket's step count went stale)."""
    a, b = twin_params((3,), (4,))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        opt = getattr(nnopt, name)([b[0], b[1], b[0]], lr=0.1, flat=flat)
    assert any("duplicate" in str(w.message) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = getattr(torch.optim, name)([a[0], a[1], a[0]], lr=0.1, foreach=False)
    feed([(ref, a), (opt, b)], 3)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", TWINS)
def test_bare_tensor_params_is_a_type_error(name):
    with pytest.raises(TypeError, match="iterable"):
        getattr(nnopt, name)(torch.zeros(3, requires_grad=True), lr=0.1)


@pytest.mark.parametrize("flat", [False, True])
def test_step_counter_stays_float32_under_a_bfloat16_default(flat):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        a, b = twin_params((8,), dtype=torch.bfloat16)
        ref, opt = pair("Adam", a, b, lr=1e-3, flat=flat)
        feed([(ref, a), (opt, b)], 300)
        assert opt.state[b[0]]["step"].dtype == torch.float32
        assert opt.state[b[0]]["step"].item() == 300
    finally:
        torch.set_default_dtype(previous)
    torch.testing.assert_close(a[0], b[0], rtol=2e-2, atol=1e-2)


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "Adam", "RMSprop"])
def test_meta_tensors_step_without_error(name):
    p = nn.Parameter(torch.empty(4, device="meta"))
    opt = getattr(nnopt, name)([p], lr=0.1)
    p.grad = torch.empty(4, device="meta")
    opt.step()
    assert p.device.type == "meta"


def test_capturable_is_refused_and_says_so():
    with pytest.raises(ValueError, match=r"capturable=True is not supported.*torch\.optim"):
        nnopt.Adam([nn.Parameter(torch.zeros(2))], capturable=True)


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "Adam", "AdamW"])
def test_meta_parameters_with_fused_raise_torch_error(name):
    """torch checks device and dtype for fused=True at the first step: a meta parameter gets
    its RuntimeError from nnopt's first step too (with or without flat buffers). An older
    torch (2.4) raised in the constructor; nnopt keeps the current torch's point."""
    match = "`fused=True` requires all the params to be floating point Tensors"
    for flat in (False, True):
        p = nn.Parameter(torch.empty(4, device="meta"))
        opt = getattr(nnopt, name)([p], lr=0.1, fused=True, flat=flat)
        p.grad = torch.empty(4, device="meta")
        with pytest.raises(RuntimeError, match=match):
            opt.step()
    q = nn.Parameter(torch.empty(4, device="meta"))
    with pytest.raises(RuntimeError, match=match):
        ref = getattr(torch.optim, name)([q], lr=0.1, fused=True)
        q.grad = torch.empty(4, device="meta")
        ref.step()


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "Adam", "RMSprop"])
def test_meta_tensors_step_in_flat_buffers(name):
    p = nn.Parameter(torch.empty(4, device="meta"))
    opt = getattr(nnopt, name)([p], lr=0.1, flat=True)
    p.grad = torch.empty(4, device="meta")
    opt.step()
    assert p.device.type == "meta"


# Two here (compiling costs seconds); every optimizer in tests/clients/.
@pytest.mark.parametrize("name", ["Adam", "SGD"])
def test_compiled_step_matches_torch(name):
    a, b = twin_params((4, 3), (5,))
    ref, opt = pair(name, a, b)
    compiled = torch.compile(opt.step)
    gen = torch.Generator().manual_seed(2)
    for _ in range(3):
        grads = [torch.randn(p.shape, generator=gen) for p in a]
        for p, q, g in zip(a, b, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        ref.step()
        compiled()
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
