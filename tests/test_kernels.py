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
        fields = dict(momentum_on=bool(momentum), nesterov=nesterov, mu=momentum)
        assert cpu.step_one("sgd", p, g, {"momentum_buffer": b}, lr=0.1, **fields, **reg)
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
    # lr_decay: the kernel's step size lr / (1 + (t - 1) lr_decay); L1 and decay use lr.
    for (lr_decay, step), reg in itertools.product(((0.0, 1), (0.1, 5)), REGULARIZATION):
        p, g, s = draw(n, dtype), draw(n, dtype), draw(n, dtype, positive=True)
        ep, es = clones(p, s)
        options = dict(lr=0.05, eps=1e-10, lr_decay=lr_decay)
        assert cpu.step_one("adagrad", p, g, {"sum": s}, step=step, **options, **reg)
        step_size = 0.05 / (1 + (step - 1) * lr_decay)
        eager_apply(eager_adagrad(step_size), ep, ref(g), es, lr=0.05, eps=1e-10, **reg)
        check(dtype, [p, s], [ep, es])


def eager_adagrad(step_size: float) -> Callable[..., rules.Divisor]:
    """rules.adagrad_ at the decayed step size (what torch's clr gives at that step)."""
    return lambda param, grad, s, *, lr, eps: rules.adagrad_(param, grad, s, lr=step_size, eps=eps)


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
        fields = dict(options, centered=centered, momentum_on=bool(momentum), mu=momentum)
        del fields["momentum"]
        state = dict(square_avg=e, grad_avg=ga, momentum_buffer=b)
        assert cpu.step_one("rmsprop", p, g, state, **fields, **reg)
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
        state = dict(exp_avg=m, exp_avg_sq=v, max_exp_avg_sq=vm)
        assert cpu.step_one("adam", p, g, state, amsgrad=amsgrad, **options, **reg)
        eager_apply(rules.adam_, ep, ref(g), em, ev, max_exp_avg_sq=evm, **options, **reg)
        check(dtype, present(p, m, v, vm), present(ep, em, ev, evm))


def test_l1_gives_exact_zeros() -> None:
    p, g = torch.tensor([0.01, -0.01, 2.0, 0.0]), torch.zeros(4)
    assert cpu.step_one("sgd", p, g, {}, lr=1.0, momentum_on=False, nesterov=False, mu=0.0, l1=0.05)
    assert p.tolist() == [0.0, 0.0, 1.9500000476837158, 0.0]


ADAGRAD = dict(lr=0.1, eps=1e-10, lr_decay=0.0)
SGD = dict(lr=0.1, momentum_on=False, nesterov=False, mu=0.0)


def test_unsupported_tensors_fall_back() -> None:
    half = torch.zeros(5, dtype=torch.float16)
    assert not cpu.step_one("adagrad", half, half.clone(), {"sum": half.clone()}, **ADAGRAD)
    strided = torch.zeros(10)[::2]
    assert not cpu.step_one("sgd", strided, torch.zeros(5), {}, **SGD)
    mixed = torch.zeros(5, dtype=torch.float64)
    assert not cpu.step_one("adagrad", torch.zeros(5), mixed, {"sum": torch.zeros(5)}, **ADAGRAD)


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
    cpu._library.cache_clear()
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
        cpu._library.cache_clear()


def test_blocks_are_read_from_the_library() -> None:
    found = blocks.read(build.load())
    # (each new kernel adds its name: its own tests check its block)
    assert {"sgd", "adagrad", "rmsprop", "adam", "lion"} <= set(found)
    assert blocks.layout(found["adagrad"]) == (
        "p:ptr,g:ptr,sum:ptr,l2_on:i32,l1_on:i32,lr:f64,step:f64,l2:f64,decay:f64,l1lr:f64,"
        "eps:f64,lr_decay:f64"
    )
    assert blocks.pointer_names(found["rmsprop"]) == ("square_avg", "grad_avg", "momentum_buffer")
    misspelt = {("epsilon" if name == "eps" else name): 0 for name, _ in found["adagrad"]._fields_}
    with pytest.raises(TypeError, match=r"missing \['eps'\], unknown \['epsilon'\]"):
        blocks.fill(found["adagrad"], misspelt)


@pytest.mark.parametrize(
    ("layout", "problem"),
    [
        ("p:ptr,g:ptr,lr:f64", "lacks one of"),
        (
            "p:ptr,g:ptr,l2_on:i32,l1_on:i32,lr:f64,step:f64,l2:f64,decay:f64,l1lr:f64,x:int",
            "malformed",
        ),
        (
            "g:ptr,l2_on:i32,p:ptr,l1_on:i32,lr:f64,step:f64,l2:f64,decay:f64,l1lr:f64",
            "pointer after",
        ),
    ],
)
def test_a_malformed_layout_is_refused(layout: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        blocks.structure("rule", layout)


def test_a_block_size_that_differs_disables_the_kernels(monkeypatch) -> None:
    """A library whose block size differs from the structure its layout gives (an alignment
    the two sides disagree on): one clear warning, then the eager rules, nothing touched."""
    real = blocks.structure

    def padded(rule: str, layout: str):
        block = real(rule, layout)
        if rule != "adagrad":
            return block
        return type(
            block.__name__,
            (ctypes.Structure,),
            {"_fields_": [*block._fields_, ("x", ctypes.c_double)]},
        )

    monkeypatch.setattr(blocks, "structure", padded)
    cpu._library.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="parameter blocks unusable: adagrad: sizeof is"):
            assert not cpu.available()
        p, g, s = torch.ones(3), torch.ones(3), torch.zeros(3)
        assert not cpu.step_one("adagrad", p, g, {"sum": s}, **ADAGRAD)
        assert p.tolist() == [1.0, 1.0, 1.0]
    finally:
        monkeypatch.undo()
        cpu._library.cache_clear()
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


def test_a_kernel_for_a_rule_the_library_lacks_says_so() -> None:
    with pytest.raises(LookupError, match="no rule 'lamb'.*declare it with NNOPT_RULE"):
        cpu.Prepared(cpu.Kernel("lamb", {}), l2=0.0, weight_decay=0.0, l1=0.0)


def test_kernel_fields_that_differ_from_the_declaration_say_where() -> None:
    with pytest.raises(TypeError, match=r"missing \['beta2'\], unknown \['b2'\].*NNOPT_RULE"):
        cpu.Prepared(
            cpu.Kernel("lion", {"beta1": 0.9, "b2": 0.99}), l2=0.0, weight_decay=0.0, l1=0.0
        )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_ademamix_matches_eager(n: int, dtype: torch.dtype) -> None:
    # t_alpha_beta3: none, inside its warmup (alpha_t, beta3_t below alpha, beta3) and past it;
    # beta1=0.2 takes lerp's second formula (weight 1 - beta1 >= 0.5).
    for (warmup, step), beta1, reg in itertools.product(
        ((0.0, 1), (10.0, 3), (10.0, 25)), (0.9, 0.2), REGULARIZATION
    ):
        p, g, m1, m2 = draw(n, dtype), draw(n, dtype), draw(n, dtype) * 0.1, draw(n, dtype) * 0.1
        v = draw(n, dtype, positive=True) * 0.01
        ep, em1, em2, ev = clones(p, m1, m2, v)
        options = dict(step=step, lr=1e-3, beta1=beta1, beta2=0.999, beta3=0.999, alpha=5.0)
        options.update(eps=1e-8)
        state = dict(exp_avg_fast=m1, exp_avg_slow=m2, exp_avg_sq=v)
        assert cpu.step_one("ademamix", p, g, state, t_alpha_beta3=warmup, **options, **reg)
        warm = warmup or None
        eager_apply(rules.ademamix_, ep, ref(g), em1, em2, ev, t_alpha_beta3=warm, **options, **reg)
        check(dtype, [p, m1, m2, v], [ep, em1, em2, ev])
