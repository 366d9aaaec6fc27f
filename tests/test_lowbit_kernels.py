"""The compact step (bfloat16 weights, 8-bit or bfloat16 state) against its float64 definition:
decode the state, step the rule in float64, encode again (``lowbit_reference.py``), on sizes
that are not multiples of the block, below the 8-bit threshold, and empty; by the native
kernel and by the eager path, which must also agree with each other."""

from __future__ import annotations

import lowbit_reference as ref
import pytest
import torch

import nnopt.optim as optim
from nnopt.optim.kernels import cpu
from nnopt.optim.lowbit import codes, forms

OPTIMIZERS = {
    "sgd": (optim.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    "adagrad": (optim.Adagrad, {"lr": 0.05, "lr_decay": 0.01}),
    "rmsprop": (optim.RMSprop, {"lr": 0.01, "momentum": 0.5}),
    "adam": (optim.AdamW, {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    # nnopt's regularization around the rule, and maximize, in compact storage too
    "adam_regularized": (
        optim.AdamW,
        {"lr": 0.01, "weight_decay": 0.1, "l1": 0.1, "l2": 0.05, "maximize": True},
    ),
}
# (weight dtype, state_dtype, param_update)
FORMS = [
    (torch.bfloat16, "int8", "kahan"),
    (torch.bfloat16, "int8", "stochastic"),
    (torch.bfloat16, "bfloat16", "kahan"),
    (torch.bfloat16, "float32", "plain"),
    (torch.float32, "int8", "plain"),
]
SIZES = [1, 300, 4097, 70001]
PATHS = ["native", "eager"]


def _run(rule, dtype, state_dtype, update, n, path, steps=3, seed=0):
    cls, options = OPTIMIZERS[rule]
    torch.manual_seed(seed)  # (stochastic rounding draws each tensor's seed from torch's)
    gen = torch.Generator().manual_seed(seed)
    w = torch.nn.Parameter(torch.randn(n, generator=gen).to(dtype))
    opt = cls([w], **options, state_dtype=state_dtype, param_update=update)
    opt.kernels = path
    grads = [torch.randn(n, generator=gen).to(dtype) for _ in range(steps)]
    for g in grads[:-1]:
        w.grad = g.clone()
        opt.step()
    return opt, w, grads[-1]


def _decoded(state: dict, key: str) -> torch.Tensor:
    held = state[key]
    if key + forms.ABSMAX in state:
        return ref.decode64(held, state[key + forms.ABSMAX], forms.SIGNED[key])
    return held.double()


def _master64(w: torch.Tensor, state: dict) -> torch.Tensor:
    comp = state.get(forms.COMP)
    if comp is None:
        return w.double()
    if comp.dtype == torch.int8:
        return ref.with_residual64(w, comp)
    return w.double() + comp.double()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype,state_dtype,update", FORMS)
@pytest.mark.parametrize("rule", list(OPTIMIZERS))
def test_step_matches_float64_definition(rule, dtype, state_dtype, update, n, path):
    if path == "native" and not cpu.available():
        pytest.skip("native kernels unavailable")
    opt, w, g = _run(rule, dtype, state_dtype, update, n, path)
    state = opt.state[w]
    group = opt.param_groups[0]
    keys = opt.state_keys(group)
    # The form: 8 bits only from 4,096 elements, else float32; a residual only with Kahan.
    held = "float32" if state_dtype == "int8" and n < forms.SMALL else state_dtype
    for k in keys:
        assert (k + forms.ABSMAX in state) == (held == "int8")
        if held != "int8":
            assert state[k].dtype == forms.DTYPES[held]
    assert (forms.COMP in state) == (update == "kahan")
    theta0 = _master64(w.detach(), state)
    state64 = {k: _decoded(state, k) for k in keys}
    t = int(state["step"]) + 1 if "step" in state else 2
    o = {**group, "eps_inside_sqrt": False, "dampening": 0.0}
    theta64, new64 = ref.step64(rule.split("_")[0], theta0, g.double(), state64, o, t)
    w.grad = g.clone()
    opt.step()

    for k in keys:
        if held == "int8":
            q, s = state[k], state[k + forms.ABSMAX]
            q64, s64 = ref.encode64(new64[k], forms.SIGNED[k])
            torch.testing.assert_close(s.double(), s64, rtol=1e-5, atol=0)
            assert (q.double() == q64).double().mean() > 0.99, k  # codes differ only at ties
            gap = ref.code_step(q, forms.SIGNED[k]) * s.double().repeat_interleave(256)[:n]
            err = (ref.decode64(q, s, forms.SIGNED[k]) - new64[k]).abs()
            assert (err <= gap + 1e-6 * new64[k].abs() + 1e-30).all(), k
        else:
            # (float32 arithmetic: an element that nearly cancels is off by the operands' eps)
            rel = 2.0**-8 if held == "bfloat16" else 1e-6
            spread = 1e-6 * float(new64[k].abs().max()) + 1e-12
            torch.testing.assert_close(state[k].double(), new64[k], rtol=rel, atol=spread)

    w64 = w.detach().double()
    # float32 arithmetic on the operands (theta0 and the step, whose own terms may cancel)
    slack = 1e-6 * (theta0.abs() + theta64.abs()) + 1e-5 * (theta64 - theta0).abs()
    if dtype == torch.float32:
        torch.testing.assert_close(w64, theta64, rtol=1e-5, atol=1e-6)
    elif update == "kahan":
        # w + c is the master: to the residual's precision (ulp/256 in 8 bits)
        err = (_master64(w.detach(), state) - theta64).abs()
        assert (err <= ref.ulp_bf16(w.detach()) / 200 + slack).all()
    else:  # plain: nearest; stochastic: one of the two neighbours
        err = (w64 - theta64).abs()
        assert (err <= ref.ulp_bf16(w.detach()) * 1.01 + slack).all()


@pytest.mark.parametrize("dtype,state_dtype,update", FORMS)
@pytest.mark.parametrize("rule", list(OPTIMIZERS))
def test_native_and_eager_paths_agree(rule, dtype, state_dtype, update):
    if not cpu.available():
        pytest.skip("native kernels unavailable")
    runs = []
    for path in PATHS:
        opt, w, g = _run(rule, dtype, state_dtype, update, 9000, path, steps=4, seed=3)
        w.grad = g
        opt.step()
        runs.append((w.detach().clone(), dict(opt.state[w])))
    (w_native, s_native), (w_eager, s_eager) = runs
    assert s_native.keys() == s_eager.keys()
    # Bit for bit but for the rule's float32 rounding, and what that moves across a rounding
    # boundary of a code or a weight (a tie rounded the other way changes the next steps of
    # that element): under 1% of the elements.
    master_native, master_eager = _master64(w_native, s_native), _master64(w_eager, s_eager)
    close = (master_native - master_eager).abs() <= 1e-6 * master_eager.abs() + 1e-7
    assert close.double().mean() > 0.99
    if dtype == torch.bfloat16:
        differ = (w_native.float() != w_eager.float()).float().mean()
        assert differ < 0.01
    for k in s_native:
        a, b = s_native[k], s_eager[k]
        assert a.dtype == b.dtype and a.shape == b.shape, k
        if k == forms.COMP:
            continue  # (a tie may round w up in one, down in the other: the masters below)
        if a.dtype in (torch.int8, torch.uint8):
            assert (a != b).float().mean() < 0.01, k
        else:
            rel = 2.0**-8 if a.dtype == torch.bfloat16 else 1e-6
            spread = 1e-6 * float(b.double().abs().max()) + 1e-12
            near = (a.double() - b.double()).abs() <= rel * b.double().abs() + spread
            assert near.double().mean() > 0.99, k


@pytest.mark.parametrize("path", PATHS)
def test_empty_and_scalar_parameters_step(path):
    empty = torch.nn.Parameter(torch.zeros(0, dtype=torch.bfloat16))
    scalar = torch.nn.Parameter(torch.tensor(1.5, dtype=torch.bfloat16))
    opt = optim.AdamW([empty, scalar], lr=0.1, state_dtype="int8", param_update="kahan")
    opt.kernels = path
    for _ in range(3):
        empty.grad = torch.zeros(0, dtype=torch.bfloat16)
        scalar.grad = torch.tensor(1.0, dtype=torch.bfloat16)
        opt.step()
    assert empty.numel() == 0
    # Adam's first steps move by ~lr each: 1.5 - 3 * 0.1 (decay 0.01 * 0.1 per step aside)
    master = float(scalar) + float(opt.state[scalar][forms.COMP])
    assert master == pytest.approx(1.5 * (1 - 0.001) ** 3 - 0.3, abs=1e-3)


def test_codes_match_float64_definition():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5000, generator=gen) * torch.logspace(-6, 0, 5000)
    for signed, values in ((True, x), (False, x * x)):
        q, s = codes.quantize(values, signed)
        q64, s64 = ref.encode64(values.double(), signed)
        assert (q.double() == q64).float().mean() > 0.999
        torch.testing.assert_close(s.double(), s64, rtol=1e-7, atol=0)
        back = codes.decode(q, s, signed)
        torch.testing.assert_close(back.double(), ref.decode64(q, s, signed), rtol=1e-6, atol=0)
    # a nonzero second moment never decodes to zero; zero blocks stay zero
    tiny = torch.tensor([1.0] + [1e-30] * 255)
    q, s = codes.quantize(tiny, signed=False)
    assert (codes.decode(q, s, signed=False)[1:] > 0).all()
    q, s = codes.quantize(torch.zeros(300), signed=True)
    assert (q == 0).all() and (s == 0).all()
