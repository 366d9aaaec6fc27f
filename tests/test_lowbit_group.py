"""The compact group table (``lowbit/group.py``): a whole group in one native call steps
every tensor bit for bit as the one-tensor path does, and notices whatever changed behind a
kept table (state loaded, ``p.data`` replaced, a gradient missing, the group's options)."""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch

import nnopt.optim as optim
from nnopt.optim.kernels import cpu
from nnopt.optim.lowbit import forms
from nnopt.optim.lowbit import group as group_table

pytestmark = pytest.mark.skipif(not cpu.available(), reason="native kernels unavailable")

# (optimizer, options): every kind of row: step counters or none (SGD), a scalar (NAdam's
# mu_product), 8-bit / bfloat16 / float32 state, Kahan and stochastic bfloat16 weights.
KAHAN = dict(state_dtype="int8", param_update="kahan")
CASES = {
    "adamw-kahan-int8": (optim.AdamW, dict(lr=3e-3, **KAHAN)),
    "adamw-stochastic": (optim.AdamW, dict(lr=3e-3, state_dtype="int8", param_update="stochastic")),
    "nadam-kahan-bf16": (optim.NAdam, dict(lr=3e-3, state_dtype="bfloat16", param_update="kahan")),
    "sgd-momentum": (optim.SGD, dict(lr=0.05, momentum=0.9, **KAHAN)),
    "rmsprop-plain": (optim.RMSprop, dict(lr=1e-3, state_dtype="int8", param_update="plain")),
    "adagrad-fp32": (optim.Adagrad, dict(lr=0.05, state_dtype="float32", param_update="kahan")),
    "adamw-l1-l2": (optim.AdamW, dict(lr=3e-3, l1=1e-4, l2=1e-3, **KAHAN)),
}  # fmt: skip
# Empty, 0-d, below min_8bit_size (float32 state), blocks not filled, above kLarge (split over
# the threads), a matrix.
SHAPES = [(0,), (), (300,), (5000,), (70001,), (64, 96)]


def _params(dtype=torch.bfloat16):
    gen = torch.Generator().manual_seed(0)
    return [torch.nn.Parameter(torch.randn(s, generator=gen).to(dtype)) for s in SHAPES]


def _grads(params, step):
    gen = torch.Generator().manual_seed(100 + step)
    for p in params:
        p.grad = (torch.randn(p.shape, generator=gen) * 0.1).to(p.dtype)


def _one_tensor_only(monkeypatch):
    monkeypatch.setattr(group_table, "step_many", lambda opt, group, how, params: params)


def _twins(name):
    cls, options = CASES[name]
    a, b = _params(), _params()
    return a, b, cls(a, **options), cls(b, **options)


def _step(params, opt, step, monkeypatch=None):
    _grads(params, step)
    torch.manual_seed(step)  # (a fresh stochastic-rounding seed is drawn from torch's)
    if monkeypatch is None:
        opt.step()
        return
    with monkeypatch.context() as m:
        _one_tensor_only(m)
        opt.step()


def _assert_same(a, b, opt_a, opt_b):
    for p, q in zip(a, b, strict=True):
        assert torch.equal(p, q)
        sa, sb = opt_a.state[p], opt_b.state[q]
        assert sa.keys() == sb.keys()
        for key in sa:
            if isinstance(sa[key], torch.Tensor):
                assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("name", CASES)
def test_group_table_steps_as_the_one_tensor_path(name, monkeypatch):
    a, b, opt_a, opt_b = _twins(name)
    for step in range(5):
        _step(a, opt_a, step)
        _step(b, opt_b, step, monkeypatch)
    _assert_same(a, b, opt_a, opt_b)
    assert opt_a.__dict__.get("_compact_tables"), "the table was never kept"
    assert "_compact_tables" not in opt_b.__dict__
    if forms.SEED in opt_a.state[a[3]]:  # drawn at the first step, then +1 per step
        assert int(opt_a.state[a[3]][forms.SEED]) == int(opt_b.state[b[3]][forms.SEED])


def test_rounding_seed_advances_in_place_once_per_step():
    params = _params()
    opt = optim.AdamW(params, lr=1e-3, state_dtype="int8", param_update="stochastic")
    _step(params, opt, 0)
    seed = opt.state[params[3]][forms.SEED]
    first = int(seed)
    for step in range(1, 4):
        _step(params, opt, step)
    assert opt.state[params[3]][forms.SEED] is seed and int(seed) == first + 3


def _replace_tensor(params, opt):
    state = opt.state[params[3]]
    state["exp_avg"] = state["exp_avg"].clone()


def _replace_state_dict(params, opt):
    opt.state[params[4]] = dict(opt.state[params[4]])


def _set(**options):
    return lambda params, opt: opt.param_groups[0].update(options)


# Each change comes after a step that kept the table, so that it meets a kept table.
CHANGES = {
    "state loaded": lambda params, opt: opt.load_state_dict(opt.state_dict()),
    "a state tensor replaced": _replace_tensor,
    "a state dict replaced": _replace_state_dict,
    "p.data replaced": lambda params, opt: setattr(params[3], "data", params[3].data.clone()),
    "a gradient missing": lambda params, opt: setattr(params[2], "grad", None),
    "state_dtype changed": _set(state_dtype="bfloat16"),
    "param_update changed": _set(param_update="stochastic"),
    "min_8bit_size changed": _set(min_8bit_size=100),
    "maximize on": _set(maximize=True),
    "maximize off": _set(maximize=False),
}


def test_a_kept_table_notices_every_change(monkeypatch):
    a, b, opt_a, opt_b = _twins("adamw-kahan-int8")
    for step in range(2):
        _step(a, opt_a, step)
        _step(b, opt_b, step, monkeypatch)
    step = 2
    for name, change in CHANGES.items():
        assert opt_a._compact_tables, f"no table kept before {name!r}"
        for params, opt, patch in ((a, opt_a, None), (b, opt_b, monkeypatch)):
            _grads(params, step)
            change(params, opt)
            torch.manual_seed(step)
            with patch.context() if patch else contextlib.nullcontext() as m:
                if m is not None:
                    _one_tensor_only(m)
                opt.step()
        _assert_same(a, b, opt_a, opt_b)
        for _ in range(2):  # (the second step keeps the table again)
            step += 1
            _step(a, opt_a, step)
            _step(b, opt_b, step, monkeypatch)
        _assert_same(a, b, opt_a, opt_b)


def test_a_deep_copy_steps_its_own_tensors():
    params = _params()
    opt = optim.AdamW(params, lr=3e-3, state_dtype="int8", param_update="kahan")
    for step in range(3):
        _step(params, opt, step)
    twin = copy.deepcopy(opt)
    assert "_compact_tables" not in twin.__dict__
    twin_params = twin.param_groups[0]["params"]
    for step in range(3, 6):
        _step(params, opt, step)
        _step(twin_params, twin, step)
    _assert_same(params, twin_params, opt, twin)
