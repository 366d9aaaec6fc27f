"""Helpers shared by the ported properties: building both optimizers, feeding gradients,
comparing parameters and state."""

from __future__ import annotations

import inspect
import os
import types
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import pytest
import torch
from torch import Tensor

import nnopt
from tests.torch_suite.configs import Case, Config

# A scalar, a vector whose length is not a multiple of 8, a matrix and a conv-like kernel.
SHAPES: tuple[tuple[int, ...], ...] = ((), (7,), (3, 5), (2, 3, 2, 2))
# Fewer tensors for the properties about mechanisms (checkpoints, groups) rather than math.
FEW: tuple[tuple[int, ...], ...] = ((), (7,), (3, 5))
STEPS = 3


def nnopt_cls(name: str) -> type:
    if os.environ.get("NNOPT_SUITE_TARGET") == "torch":
        return torch_twin(name)
    cls = getattr(nnopt, name, None)
    if cls is None:
        pytest.fail(f"nnopt has no {name}: the drop-in twin of torch.optim.{name} is missing")
    return cls


@cache
def torch_twin(name: str) -> type:
    """torch.optim's class with nnopt's surface (``flat``, ``kernels``, refusals): what the
    suite expects of nnopt, used to check the suite itself (NNOPT_SUITE_TARGET=torch)."""
    base = getattr(torch.optim, name)

    def __init__(self, params, *args, flat=False, **kwargs):
        if kwargs.get("capturable") and not torch.cuda.is_available():
            raise ValueError("capturable=True is not supported by nnopt")
        self.flat, self.kernels = flat, "auto"
        base.__init__(self, params, *args, **kwargs)

    def __getstate__(self):
        return {**base.__getstate__(self), "flat": self.flat, "kernels": self.kernels}

    signature = inspect.signature(base.__init__)
    flat = inspect.Parameter("flat", inspect.Parameter.KEYWORD_ONLY, default=False)
    __init__.__signature__ = signature.replace(parameters=[*signature.parameters.values(), flat])
    twin = type(name, (base,), {"__init__": __init__, "__getstate__": __getstate__})
    twin.__qualname__ = f"twins.{name}"  # so that pickle finds it
    setattr(twins, name, twin)
    return twin


twins = types.SimpleNamespace()


def make_nnopt(case: Case, params: Any, **override: Any) -> torch.optim.Optimizer:
    """nnopt's optimizer of the case's class, kwargs, layout and kernel mode."""
    cfg = case.cfg
    kwargs = cfg.kwargs(**override)
    opt = nnopt_cls(cfg.name)(params, **kwargs, flat=case.flat)
    if case.kernels != "any":
        opt.kernels = case.kernels
    return opt


def make_torch(cfg: Config, params: Any, **override: Any) -> torch.optim.Optimizer:
    return cfg.torch_cls(params, **cfg.kwargs(**override))


def raises_like(error_type: type[BaseException]):
    """pytest.raises(error_type), refusing a signature error (a missing or unknown argument)
    as the reason: that error would pass for the wrong one."""

    class _Check:
        def __enter__(self):
            self.ctx = pytest.raises(error_type)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self.ctx.__exit__(*exc)
            if not handled:  # another exception type: let it through as it is
                return False
            message = str(self.info.value)
            for sign in ("unexpected keyword argument", "required positional argument"):
                assert sign not in message, f"a signature error, not the expected one: {message}"
            return handled

    return _Check()


def torch_refuses(cfg: Config, **override: Any) -> BaseException | None:
    """The exception torch.optim raises for this config at construction, if any."""
    try:
        make_torch(cfg, [torch.zeros(2, device=cfg.device, requires_grad=True)], **override)
    except (ValueError, TypeError, RuntimeError) as error:
        return error
    return None


def skip_flat(case: Case, why: str) -> None:
    if case.flat:
        pytest.skip(f"flat=True cannot apply: {why}")


def leaves(
    shapes: Sequence[tuple[int, ...]] = SHAPES,
    *,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    seed: int = 0,
) -> list[Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(s, generator=gen, dtype=dtype).to(device).requires_grad_(True) for s in shapes
    ]


def clones(params: Sequence[Tensor]) -> list[Tensor]:
    return [p.detach().clone().requires_grad_(p.requires_grad) for p in params]


def grads_for(params: Sequence[Tensor], steps: int = STEPS, *, seed: int = 1) -> list[list[Tensor]]:
    """``steps`` lists of random gradients shaped (and typed) like ``params``."""
    gen = torch.Generator().manual_seed(seed)
    return [
        [torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device) for p in params]
        for _ in range(steps)
    ]


def backward_step(opt: torch.optim.Optimizer, params: Sequence[Tensor], grads: Sequence[Tensor]):
    """zero_grad, a backward that lands exactly ``grads``, then step (a real training step)."""
    opt.zero_grad()
    loss = sum((p * g).sum() for p, g in zip(params, grads, strict=True) if p.requires_grad)
    loss.backward()
    return opt.step()


def assign_step(opt: torch.optim.Optimizer, params: Sequence[Tensor], grads: Sequence[Tensor]):
    """Set ``p.grad`` to a copy of each gradient (None stays None), then step."""
    for p, g in zip(params, grads, strict=True):
        p.grad = None if g is None else g.clone()
    return opt.step()


def tolerances(dtype: torch.dtype) -> dict[str, float]:
    if dtype in (torch.float64, torch.complex128):
        return dict(rtol=1e-9, atol=1e-11)
    return dict(rtol=2e-5, atol=2e-6)


def _all_close(pairs: list[tuple[Tensor, Tensor]], tol: dict[str, float]) -> bool:
    """Whether every pair is close: one isclose per dtype over all of them concatenated
    (instead of an assert_close per pair, the bulk of the suite's time)."""
    by_dtype: dict[torch.dtype, tuple[list[Tensor], list[Tensor]]] = {}
    for a, b in pairs:
        if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
            return False
        ours, theirs = by_dtype.setdefault((b.dtype, b.device), ([], []))
        ours.append(a.detach().reshape(-1))
        theirs.append(b.detach().reshape(-1))
    for (dtype, _), (ours, theirs) in by_dtype.items():
        if not torch.isclose(
            torch.cat(ours), torch.cat(theirs), **(tol or tolerances(dtype))
        ).all():
            return False
    return True


def assert_params_close(
    ours: Sequence[Tensor], ref: Sequence[Tensor], what: str = "parameters", **tol: float
) -> None:
    pairs = list(zip(ours, ref, strict=True))
    if _all_close(pairs, tol):
        return
    for i, (a, b) in enumerate(pairs):  # say which one, and how
        torch.testing.assert_close(
            a.detach(),
            b.detach(),
            **(tol or tolerances(b.dtype)),
            msg=lambda m, i=i: f"{what}[{i}] differ: {m}",
        )


def assert_params_equal(ours: Sequence[Tensor], ref: Sequence[Tensor], what: str) -> None:
    for i, (a, b) in enumerate(zip(ours, ref, strict=True)):
        assert torch.equal(a.detach(), b.detach()), f"{what}[{i}] differ"


def assert_states_close(
    ours: torch.optim.Optimizer,
    ref: torch.optim.Optimizer,
    ours_params: Sequence[Tensor],
    ref_params: Sequence[Tensor],
    **tol: float,
) -> None:
    """Same state keys per parameter, same values, same dtype and device of each entry."""
    pairs, names = [], []
    for i, (p, q) in enumerate(zip(ours_params, ref_params, strict=True)):
        a, b = ours.state.get(p, {}), ref.state.get(q, {})
        assert set(a) == set(b), f"state[{i}] keys {sorted(a)} != torch's {sorted(b)}"
        for key, expected in b.items():
            got = a[key]
            if not isinstance(expected, Tensor):
                assert got == expected, f"state[{i}][{key!r}] = {got!r} != torch's {expected!r}"
                continue
            assert isinstance(got, Tensor), f"state[{i}][{key!r}] is {type(got).__name__}"
            assert got.dtype == expected.dtype, (
                f"state[{i}][{key!r}] dtype {got.dtype} != torch's {expected.dtype}"
            )
            assert got.device == expected.device, (
                f"state[{i}][{key!r}] on {got.device}, torch's on {expected.device}"
            )
            assert got.shape == expected.shape, (
                f"state[{i}][{key!r}] shape {tuple(got.shape)} != {tuple(expected.shape)}"
            )
            pairs.append((got, expected))
            names.append(f"state[{i}][{key!r}]")
    if _all_close(pairs, tol):
        return
    for name, (got, expected) in zip(names, pairs, strict=True):
        torch.testing.assert_close(
            got,
            expected,
            **(tol or tolerances(expected.dtype)),
            msg=lambda m, name=name: f"{name} differs: {m}",
        )


def run_side_by_side(
    case: Case,
    params: Sequence[Tensor],
    *,
    steps: int = STEPS,
    feed: Callable = backward_step,
    grads: list[list[Tensor]] | None = None,
    ours_params: Any = None,
    ref_params: Any = None,
    check_state: bool = True,
    **override: Any,
) -> tuple[Any, Any, list[Tensor], list[Tensor]]:
    """nnopt and torch.optim on copies of ``params`` with the same gradients: parameters
    compared after every step, state (keys, values, dtypes, devices) after the last.
    ``ours_params`` / ``ref_params`` map the copies to what each optimizer is given (param
    groups); by default the list itself."""
    mine, theirs = clones(params), clones(params)
    try:
        ref = make_torch(case.cfg, ref_params(theirs) if ref_params else theirs, **override)
    except (ValueError, TypeError) as refused:  # e.g. Tensor lr with CUDA's default foreach
        with raises_like(type(refused)):
            make_nnopt(case, ours_params(mine) if ours_params else mine, **override)
        pytest.skip(f"torch.optim refuses this config here (so does nnopt): {refused}")
    ours = make_nnopt(case, ours_params(mine) if ours_params else mine, **override)
    for t, g in enumerate(grads or grads_for(params, steps)):
        feed(ours, mine, g)
        feed(ref, theirs, g)
        assert_params_close(mine, theirs, f"after step {t + 1}, parameters")
    if check_state:
        assert_states_close(ours, ref, mine, theirs)
    return ours, ref, mine, theirs


def linear_problem(device: str = "cpu", dtype: torch.dtype = torch.float32, contiguous=True):
    """weight (10x5), bias (10) and an input: loss = |W x + b|^2, as torch's tests use."""
    gen = torch.Generator().manual_seed(3)
    if contiguous:
        w = torch.randn(10, 5, generator=gen, dtype=dtype)
        b = torch.randn(10, generator=gen, dtype=dtype)
    else:
        w = torch.randn(10, 5, 2, generator=gen, dtype=dtype)[..., 0]
        b = torch.randn(10, 2, generator=gen, dtype=dtype)[..., 0]
    x = torch.randn(5, generator=gen, dtype=dtype).to(device)
    w = torch.nn.Parameter(w.to(device))
    b = torch.nn.Parameter(b.to(device))
    return w, b, x


def linear_loss(w: Tensor, b: Tensor, x: Tensor) -> Tensor:
    return (w.mv(x) + b).pow(2).sum()
