"""Shared helpers for the optimizer tests: parameters, gradient streams, side-by-side runs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor

# A scalar, a vector, a matrix, a 4-D conv-like kernel and a size that is not a multiple of 8.
SHAPES: tuple[tuple[int, ...], ...] = ((), (7,), (3, 5), (2, 3, 3, 3), (13,))

# nnopt's storage modes x kernel modes.
FLAT_MODES = (True, False)
KERNEL_MODES = ("auto", "eager")


def make_params(
    shapes: Sequence[tuple[int, ...]] = SHAPES, *, dtype=torch.float32, seed: int = 0
) -> list[Tensor]:
    """Leaf tensors with requires_grad, filled from a seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=gen, dtype=dtype).requires_grad_(True) for shape in shapes]


def clone_params(params: Iterable[Tensor]) -> list[Tensor]:
    """Independent leaf copies (same values, same requires_grad)."""
    return [p.detach().clone().requires_grad_(p.requires_grad) for p in params]


def grad_stream(
    shapes: Sequence[tuple[int, ...]], steps: int, *, dtype=torch.float32, seed: int = 1
) -> list[list[Tensor]]:
    """``steps`` lists of random gradients, one per shape, from a seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    return [
        [torch.randn(shape, generator=gen, dtype=dtype) for shape in shapes] for _ in range(steps)
    ]


def backward_step(opt: torch.optim.Optimizer, params: Sequence[Tensor], grads: Sequence[Tensor]):
    """One training step whose gradients are exactly ``grads``: zero_grad, backward, step.

    The loss is sum(<p, g>), so the backward pass lands the gradients the way a real model's
    does (accumulating into whatever ``.grad`` holds, flat buffer views included).
    """
    opt.zero_grad()
    loss = sum((p * g.to(p.dtype)).sum() for p, g in zip(params, grads, strict=True))
    loss.backward()
    opt.step()


def rel_diff(a: Tensor, b: Tensor) -> float:
    """Relative difference of two tensors: max |a - b| / max(max |b|, 1) (complex-safe).

    Normwise per tensor, so that an element that happens to sit near zero (or a scalar
    parameter crossing zero) does not turn one float32 rounding (PyTorch's fused kernels round
    differently from its loops) into a huge ratio, while any wrong element still shows at full
    size. The test parameters are O(1), so the floor of 1 only matters for such crossings.
    """
    return max_rel_diff([a], [b])


def max_rel_diff(xs: Sequence[Tensor], ys: Sequence[Tensor]) -> float:
    """The largest :func:`rel_diff` over pairs of tensors (one sync, not one per tensor)."""
    ratios = [
        (x.detach() - y.detach()).abs().max() / y.detach().abs().max().clamp(min=1.0)
        for x, y in zip(xs, ys, strict=True)
        if y.numel()
    ]
    return torch.stack(ratios).max().item() if ratios else 0.0


Maker = Callable[[list[Tensor]], torch.optim.Optimizer]


def compare_trajectories(
    ours: Maker | dict[str, Maker],
    refs: Maker | dict[str, Maker],
    *,
    shapes: Sequence[tuple[int, ...]] = SHAPES,
    steps: int = 60,
    dtype=torch.float32,
    seed: int = 0,
    tol: float = 1e-5,
) -> float:
    """Run optimizers on identical parameters and gradients; assert every step agrees.

    ``ours`` and ``refs`` are optimizer factories (or dicts of named ones); after every step
    each of ours must be within ``tol`` (:func:`max_rel_diff`) of each reference. Running all
    variants side by side computes each reference trajectory once. Returns the worst
    difference seen.
    """
    ours = ours if isinstance(ours, dict) else {"ours": ours}
    refs = refs if isinstance(refs, dict) else {"ref": refs}
    start = make_params(shapes, dtype=dtype, seed=seed)
    runs = {}
    for name, make in (*ours.items(), *refs.items()):
        params = clone_params(start)
        runs[name] = (make(params), params)
    worst = 0.0
    for t, grads in enumerate(grad_stream(shapes, steps, dtype=dtype, seed=seed + 1)):
        for opt, params in runs.values():
            backward_step(opt, params, grads)
        flat = {name: _cat(params) for name, (_, params) in runs.items()}
        for ref_name in refs:
            ref_params = runs[ref_name][1]
            # Per-tensor scale max(max |b|, 1), spread over the tensor's elements.
            scales = torch.stack([p.detach().abs().max() for p in ref_params]).clamp(min=1.0)
            scales = scales.repeat_interleave(torch.tensor([p.numel() for p in ref_params]))
            for name in ours:
                diff = ((flat[name] - flat[ref_name]).abs() / scales).max().item()
                assert diff < tol, (
                    f"step {t + 1}: {name} vs {ref_name}: max relative difference "
                    f"{diff:.3g} >= {tol}"
                )
                worst = max(worst, diff)
    return worst


def _cat(params: Sequence[Tensor]) -> Tensor:
    return torch.cat([p.detach().reshape(-1) for p in params])


def nnopt_variants(cls, *args, flat_modes=FLAT_MODES, **kwargs) -> dict[str, Maker]:
    """Factories for ``cls`` in every storage mode x kernel mode, named like ``flat-auto``."""
    variants = {}
    for flat in flat_modes:
        for kernels in KERNEL_MODES:
            name = f"{'flat' if flat else 'per-tensor'}-{kernels}"
            variants[name] = _variant(cls, args, kwargs, flat, kernels)
    return variants


def _variant(cls, args, kwargs, flat, kernels) -> Maker:
    def make(params):
        opt = cls(params, *args, flat=flat, **kwargs)
        opt.kernels = kernels
        return opt

    return make


def torch_variants(cls, *args, **kwargs) -> dict[str, Maker]:
    """torch.optim ``cls`` in its default mode and its per-tensor loop (foreach=False)."""
    loop = {**kwargs, "foreach": False} if len(args) < _FOREACH_POSITION.get(cls, 99) else kwargs
    return {
        "torch-default": lambda ps: cls(ps, *args, **kwargs),
        "torch-foreach0": lambda ps: cls(ps, *args, **loop),
    }


# Where torch takes ``foreach`` positionally (a call that fills it cannot pass it again).
_FOREACH_POSITION = {torch.optim.Adagrad: 6, torch.optim.RMSprop: 8}
