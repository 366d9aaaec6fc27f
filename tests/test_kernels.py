"""Native one-pass kernels against the eager rules they fuse (the reference).

Every case draws fresh random tensors, runs the eager composition of ``Optimizer._apply``
(coupled L2 -> decoupled decay -> rule -> L1 prox with threshold l1 * lr / d) on one copy and
the kernel on another, and compares parameters and every state tensor. Sizes include empty,
tiny, odd (not multiples of any vector width) and one above the kernels' threading threshold.
"""

from __future__ import annotations

import ctypes
import itertools
import warnings
from collections.abc import Callable

import pytest
import torch

import nnopt
from nnopt.optim import RMSProp, kernels, rules
from nnopt.optim.kernels import blocks, build, cpu

# The last size spans two of the kernels' 2**14-element chunks, so it runs on two threads (and stays
# under torch's 32768-element grain, so the eager reference is not slowed by OpenMP under load).
SIZES = [0, 1, 7, 33, 1001, (1 << 14) + 77]
DTYPES = [torch.float32, torch.float64, torch.bfloat16]
# bfloat16 kernels compute in float32 and round once on store, so their reference is the eager
# rule run in float32 on the same values: equal up to one bfloat16 rounding (2**-8 relative).
# (The eager rule in bfloat16 rounds after every op and loses much more where terms cancel.)
TOLERANCE = {
    torch.float32: dict(rtol=1e-5, atol=1e-6),
    torch.float64: dict(rtol=1e-12, atol=1e-14),
    torch.bfloat16: dict(rtol=2**-7, atol=1e-6),
}
REGULARIZATION = [
    dict(l2=0.0, weight_decay=0.0, l1=0.0),
    dict(l2=0.1, weight_decay=0.0, l1=0.0),
    dict(l2=0.0, weight_decay=0.05, l1=0.02),
    dict(l2=0.1, weight_decay=0.05, l1=0.02),
]


@pytest.fixture(scope="session", autouse=True)
def native() -> None:
    """Build (or load from the cache) the library once per session; skip if it cannot be."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not cpu.available():
            pytest.skip(f"native kernels unavailable: {build.failure_reason()}")


def draw(n: int, dtype: torch.dtype, *, positive: bool = False) -> torch.Tensor:
    x = torch.randn(n, dtype=torch.float64)
    return (x.abs() if positive else x).to(dtype)


def eager_apply(
    rule: Callable[..., rules.Divisor],
    param: torch.Tensor,
    grad: torch.Tensor,
    *state: torch.Tensor | None,
    lr: float,
    l2: float,
    weight_decay: float,
    l1: float,
    **options,
) -> None:
    """The eager path of ``Optimizer._apply``."""
    if l2:
        grad = rules.with_l2(grad, param, l2=l2)
    if weight_decay:
        rules.decoupled_decay_(param, lr=lr, weight_decay=weight_decay)
    divisor = rule(param, grad, *state, lr=lr, **options)
    if l1:
        rules.soft_threshold_(param, l1 * lr / divisor)


def check(dtype: torch.dtype, got: list[torch.Tensor], want: list[torch.Tensor]) -> None:
    for g, w in zip(got, want, strict=True):
        assert g.dtype == dtype
        torch.testing.assert_close(g.to(w.dtype), w, **TOLERANCE[dtype])


def clones(*tensors: torch.Tensor | None) -> list[torch.Tensor | None]:
    """Copies for the eager reference (in float32 for bfloat16, see TOLERANCE)."""
    return [
        None if t is None else t.float() if t.dtype == torch.bfloat16 else t.clone()
        for t in tensors
    ]


def ref(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.dtype == torch.bfloat16 else t


def present(*tensors: torch.Tensor | None) -> list[torch.Tensor]:
    return [t for t in tensors if t is not None]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_sgd_matches_eager(n: int, dtype: torch.dtype) -> None:
    for momentum, nesterov, reg in itertools.product((0.0, 0.9), (False, True), REGULARIZATION):
        if nesterov and not momentum:
            continue
        p, g, b = draw(n, dtype), draw(n, dtype), draw(n, dtype) if momentum else None
        ep, eb = clones(p, b)
        assert cpu.sgd_(p, g, b, lr=0.1, momentum=momentum, nesterov=nesterov, **reg)
        if momentum:
            options = dict(lr=0.1, momentum=momentum, nesterov=nesterov)
            eager_apply(rules.momentum_, ep, ref(g), eb, **options, **reg)
            check(dtype, [p, b], [ep, eb])
        else:
            eager_apply(rules.sgd_, ep, ref(g), lr=0.1, **reg)
            check(dtype, [p], [ep])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_adagrad_matches_eager(n: int, dtype: torch.dtype) -> None:
    for reg in REGULARIZATION:
        p, g, s = draw(n, dtype), draw(n, dtype), draw(n, dtype, positive=True)
        ep, es = clones(p, s)
        assert cpu.adagrad_(p, g, s, lr=0.05, eps=1e-10, **reg)
        eager_apply(rules.adagrad_, ep, ref(g), es, lr=0.05, eps=1e-10, **reg)
        check(dtype, [p, s], [ep, es])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_rmsprop_matches_eager(n: int, dtype: torch.dtype) -> None:
    # rho=0.3 also takes lerp's second formula (weight 1 - rho >= 0.5).
    for centered, momentum, inside, rho, reg in itertools.product(
        (False, True), (0.0, 0.9), (False, True), (0.9, 0.3), REGULARIZATION
    ):
        p, g = draw(n, dtype), draw(n, dtype)
        e = draw(n, dtype, positive=True) + 1.0  # keeps E - gbar^2 > 0 when centered
        ga = draw(n, dtype) * 0.1 if centered else None
        b = draw(n, dtype) if momentum else None
        ep, ee, ega, eb = clones(p, e, ga, b)
        options = dict(lr=0.01, rho=rho, eps=1e-6, eps_inside_sqrt=inside, momentum=momentum)
        assert cpu.rmsprop_(p, g, e, grad_avg=ga, momentum_buffer=b, **options, **reg)
        state = dict(grad_avg=ega, momentum_buffer=eb)
        eager_apply(rules.rmsprop_, ep, ref(g), ee, **state, **options, **reg)
        check(dtype, present(p, e, ga, b), present(ep, ee, ega, eb))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_adam_matches_eager(n: int, dtype: torch.dtype) -> None:
    # beta1=0.2 takes lerp's second formula (weight 1 - beta1 >= 0.5).
    for amsgrad, step, beta1, reg in itertools.product(
        (False, True), (1, 7), (0.9, 0.2), REGULARIZATION
    ):
        p, g, m = draw(n, dtype), draw(n, dtype), draw(n, dtype) * 0.1
        v = draw(n, dtype, positive=True) * 0.01
        vm = draw(n, dtype, positive=True) * 0.01 if amsgrad else None
        ep, em, ev, evm = clones(p, m, v, vm)
        options = dict(step=step, lr=1e-3, beta1=beta1, beta2=0.999, eps=1e-8)
        assert cpu.adam_(p, g, m, v, max_exp_avg_sq=vm, **options, **reg)
        eager_apply(rules.adam_, ep, ref(g), em, ev, max_exp_avg_sq=evm, **options, **reg)
        check(dtype, present(p, m, v, vm), present(ep, em, ev, evm))


def test_l1_gives_exact_zeros() -> None:
    p, g = torch.tensor([0.01, -0.01, 2.0, 0.0]), torch.zeros(4)
    assert cpu.sgd_(p, g, None, lr=1.0, momentum=0.0, nesterov=False, l1=0.05)
    assert p.tolist() == [0.0, 0.0, 1.9500000476837158, 0.0]


def test_unsupported_tensors_fall_back() -> None:
    half = torch.zeros(5, dtype=torch.float16)
    assert not cpu.adagrad_(half, half.clone(), half.clone(), lr=0.1, eps=1e-10)
    strided = torch.zeros(10)[::2]
    assert not cpu.sgd_(strided, torch.zeros(5), None, lr=0.1, momentum=0.0, nesterov=False)
    mixed = torch.zeros(5, dtype=torch.float64)
    assert not cpu.adagrad_(torch.zeros(5), mixed, torch.zeros(5), lr=0.1, eps=1e-10)


def test_kernels_mode_is_validated() -> None:
    with pytest.raises(ValueError, match="kernels must be one of"):
        kernels.use_native("fast")


def test_a_misspelt_kernels_mode_fails_when_set_not_at_the_next_step() -> None:
    opt = nnopt.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    with pytest.raises(ValueError, match="kernels must be one of 'auto', 'native'.*got 'eagr'"):
        opt.kernels = "eagr"
    assert opt.kernels == "auto"


def test_missing_compiler_falls_back_with_one_warning(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(build, "find_compiler", lambda: None)
    monkeypatch.setattr(build, "_loaded", {})
    monkeypatch.setenv("NNOPT_CACHE_DIR", str(tmp_path))
    cpu._functions.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="native CPU kernels unavailable"):
            assert not cpu.available()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no second warning
            p = torch.nn.Parameter(torch.ones(3))
            p.grad = torch.ones(3)
            opt = RMSProp([p], lr=0.1)
            opt.step()
        assert p.detach().lt(1).all()
    finally:
        cpu._functions.cache_clear()


def test_blocks_match_the_library() -> None:
    lib = build.load()
    assert blocks.check(lib) is None
    assert blocks.layout(blocks.AdagradArgs) == (
        "p:ptr,g:ptr,sum:ptr,l2_on:i32,l1_on:i32,lr:f64,eps:f64,l2:f64,decay:f64,l1lr:f64"
    )
    misspelt = {
        ("epsilon" if name == "eps" else name): 0 for name, _ in blocks.AdagradArgs._fields_
    }
    with pytest.raises(TypeError, match=r"missing \['eps'\], unknown \['epsilon'\]"):
        blocks.fill(blocks.AdagradArgs, misspelt)


def test_swapped_block_fields_disable_the_kernels(monkeypatch) -> None:
    """lr and eps swapped in the Python description: one clear warning, then the eager rules."""
    fields = list(blocks.AdagradArgs._fields_)
    i, j = fields.index(("lr", blocks.F64)), fields.index(("eps", blocks.F64))
    fields[i], fields[j] = fields[j], fields[i]
    swapped = type("AdagradArgs", (ctypes.Structure,), {"_fields_": fields})
    assert ctypes.sizeof(swapped) == ctypes.sizeof(blocks.AdagradArgs)  # only names tell
    lib = build.load()
    reason = blocks.check(lib, {**blocks.BLOCKS, "adagrad": swapped})
    assert reason is not None
    assert "adagrad: library has 'p:ptr,g:ptr,sum:ptr,l2_on:i32,l1_on:i32,lr:f64,eps:f64" in reason
    assert "Python has 'p:ptr,g:ptr,sum:ptr,l2_on:i32,l1_on:i32,eps:f64,lr:f64" in reason
    monkeypatch.setitem(blocks.BLOCKS, "adagrad", swapped)
    cpu._functions.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="parameter blocks differ from kernels/blocks.py"):
            assert not cpu.available()
        assert "adagrad: library has" in build.failure_reason()
        p, g, s = torch.ones(3), torch.ones(3), torch.zeros(3)
        assert not cpu.adagrad_(p, g, s, lr=0.1, eps=1e-10)
        assert p.tolist() == [1.0, 1.0, 1.0]
    finally:
        monkeypatch.undo()
        cpu._functions.cache_clear()
    assert cpu.available()


def test_library_is_cached(tmp_path, monkeypatch) -> None:
    """A second load reuses the built file: the cache path depends on source, flags, compiler."""
    compiler = build.find_compiler()
    assert compiler is not None
    path = build.library_path(compiler, build.FLAG_SETS[0])
    monkeypatch.setenv("NNOPT_CACHE_DIR", str(tmp_path))
    assert build.library_path(compiler, build.FLAG_SETS[0]) != path
    assert build.library_path(compiler, build.FLAG_SETS[1]) != build.library_path(
        compiler, build.FLAG_SETS[0]
    )
