"""The one choice of compute path for an optimizer step, made here for every optimizer.

Each optimizer declares its eager rule (``update``), nnopt's native one-pass kernel
(``native_kernel``) and PyTorch's fused multi-tensor kernel (``fused``, with ``fused_covers``
for the options and ``fused_supports`` for the dtypes and devices where it is exactly the
rule). For the tensors of one param group this module runs, in order of preference (the
optimizer's ``kernels`` mode says which families may run):

1. nnopt's group kernel (``group_kernel.py``): every plain contiguous CPU tensor of the group
   in one native call per dtype, the step counters advanced by the kernel (plain SGD: torch's
   foreach loop of the rule's one op). Per tensor it costs a few attribute reads, where every
   per-tensor path costs 5-25 us, which is the whole step on many small tensors;
   tensors of ``LARGE`` elements or more are left to torch's fused kernel where it covers
   the update (it streams them ~15% faster);
2. PyTorch's fused kernel, once per (device, dtype) over every tensor it supports (CUDA);
3. nnopt's native kernel, tensor by tensor (what the group kernel could not take);
4. the eager rule, tensor by tensor: the reference every kernel is tested against, and the
   only path for tensor subclasses (DTensor), meta tensors and ``torch.compile`` tracing.

The choice is planned once per group and step (:func:`plan`: the rule's options read from the
group, whether nnopt's and torch's kernels may run) and every path reads that plan. This module
knows an optimizer only through ``contract.Stepped``; a ``differentiable=True`` group is
stepped by ``differentiable.py`` (the eager rule under autograd).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from nnopt.optim import group_kernel, kernels, rules
from nnopt.optim.contract import PLAIN as _PLAIN
from nnopt.optim.contract import Plan
from nnopt.optim.contract import Stepped as Optimizer
from nnopt.optim.lazy_state import init_state, state_size
from nnopt.optim.options import Hyper

if TYPE_CHECKING:
    from nnopt.optim.flat import FlatBucket, FlatLayout

_FUSED_DEVICES = ("cpu", "cuda")


def plan(opt: Optimizer, group: dict[str, Any], h: Hyper) -> Plan:
    """How ``group`` is stepped this step: ``opt.kernels`` (validated when set), the eager
    rule alone while torch.compile traces (neither kernel family is traceable; the rule is
    plain tensor code) and in a differentiable step, and torch's fused kernel only where it
    computes exactly this update (asked once here, not per path)."""
    options = opt.rule_options(group, h)
    mode = opt.kernels
    if mode == "eager" or group.get("differentiable") or torch.compiler.is_compiling():
        return Plan(options, native=None, fused=False)
    fused = mode != "native" and opt.fused_covers(options, h)
    native = None
    if mode != "torch" and kernels.cpu.available():
        native = _prepared(opt, options, h)
    return Plan(options, native, fused)


def _prepared(opt: Optimizer, options: dict[str, Any], h: Hyper) -> kernels.cpu.Prepared | None:
    """The rule's native kernel filled for these options and regularization, at this lr.

    Filled once per option set and kept on the optimizer (a few us per step on small models,
    where the step is tens of us): an lr schedule changes only the lr fields.
    """
    varying = opt.step_fields
    fixed = options if not varying else {k: v for k, v in options.items() if k not in varying}
    key = (*fixed.values(), h.coupled, h.decoupled, h.l1)
    memo = opt.__dict__.setdefault("_prepared_kernels", {})
    prepared = memo.get(key, False)
    if prepared is False:
        kernel = opt.native_kernel(options)
        prepared = kernel and kernels.cpu.Prepared(
            kernel, l2=h.coupled, weight_decay=h.decoupled, l1=h.l1
        )
        if len(memo) >= 16:  # options that change every step (a momentum schedule)
            memo.clear()
        memo[key] = prepared
    if prepared and varying:
        prepared.set_fields({k: options[k] for k in varying})
    return prepared and prepared.at_lr(h.lr)


def step_group(
    opt: Optimizer,
    group: dict[str, Any],
    h: Hyper,
    how: Plan,
    params: list[Tensor] | None = None,
) -> None:
    """One step of every parameter of ``group`` (or of ``params``) that has a gradient."""
    params = group["params"] if params is None else params
    if opt.whole_tensors(group):
        _step_whole(opt, group, h, how, params)
        return
    if how.native is not None and not h.maximize:
        params = group_kernel.step_many(opt, group, how, params)
        if not params:
            return
    keys = opt.state_keys(group)
    items = []
    all_state = opt.state
    complete = state_size(opt, keys)  # the state's size once it is all there
    last = keys[-1] if keys else None
    for p in params:
        grad = p.grad
        if grad is None:
            continue
        if grad.is_sparse:
            grad = grad.to_dense()
        if not complete:  # a rule without state (plain SGD) leaves no entry, as torch
            items.append((p, grad, {}, False))
            continue
        state = all_state[p]
        if last is not None and len(state) == complete and last in state:
            # The common case, checked inline (this loop runs per tensor, every step).
            held = state[keys[0]]
            if held.dtype == p.dtype and held.get_device() == p.get_device():
                items.append((p, grad, state, False))
                continue
        items.append((p, grad, state, init_state(opt, group, p, state, keys)))
    if not items:
        return
    # A parameter listed twice is stepped twice, one after the other, as torch's for-loop.
    sequential = len(set(map(id, (item[0] for item in items)))) != len(items)
    if opt.uses_step and not sequential:
        torch._foreach_add_([item[2]["step"] for item in items], 1.0)
    batches: dict[tuple, list] = {}
    rest = items
    if how.fused and not sequential:
        rest = []
        kinds: dict[tuple, bool] = {}  # (device, dtype) -> does the fused kernel take it
        for item in items:
            param, grad, state, fresh = item
            # (device type and index, dtype) without building a torch.device per tensor
            kind = (param.is_cpu, param.is_cuda, param.get_device(), param.dtype)
            supported = kinds.get(kind)
            if supported is None:
                supported = kinds[kind] = _fused_kind(opt, param)
            if supported and _fusable(keys, param, grad, state):
                batches.setdefault((*kind, fresh), []).append(item)
            else:
                rest.append(item)
    for kind, batch in batches.items():
        ps, gs, ss, _ = zip(*batch, strict=True)
        device, first = ps[0].device, kind[-1]
        steps = []
        if opt.uses_step:
            on_cpu = device.type == "cpu"  # the counters are used in place there
            steps = [s["step"] if on_cpu else s["step"].to(device) for s in ss]
        opt.fused(how.options, h, list(ps), list(gs), list(ss), steps, first)
    tracing = torch.compiler.is_compiling()
    for param, grad, state, fresh in rest:
        if opt.uses_step and sequential:
            state["step"] += 1
        if opt.uses_step and opt.rule_reads_step:
            # While torch.compile traces, the counter itself: .item() would break the graph.
            step = state["step"] if tracing else int(state["step"].item())
        else:
            step = 1 if fresh else 2
        tensors = {k: state[k] for k in keys}
        if param.is_complex():
            # Complex numbers are updated as pairs of reals, as torch.optim does.
            param, grad = torch.view_as_real(param), torch.view_as_real(grad)
            tensors = {k: torch.view_as_real(v) for k, v in tensors.items()}
        if opt.scalar_state:
            for name in opt.scalar_state:
                tensors[name] = state[name]
        apply(opt, h, param, grad, tensors, step, how)


def _step_whole(
    opt: Optimizer, group: dict[str, Any], h: Hyper, how: Plan, params: list[Tensor]
) -> None:
    """One step of a group whose rule reads each parameter whole (``whole_tensors``): the
    eager rule, parameter by parameter, on the parameter in its own shape."""
    tracing = torch.compiler.is_compiling()
    name = type(opt).__name__
    for p in params:
        grad = p.grad
        if grad is None:
            continue
        # (torch's Muon and Adafactor refuse these, in these words)
        if p.is_complex():
            raise RuntimeError(f"{name} does not support complex parameters")
        if grad.is_sparse:
            raise RuntimeError(f"{name} does not support sparse gradients")
        state = opt.state[p]
        if not state:
            state.update(opt.start_state(group, p))
        step: Any = 1
        if "step" in state:
            state["step"] += 1
            step = state["step"] if tracing else int(state["step"].item())
        tensors = {k: v for k, v in state.items() if k != "step"}
        apply(opt, h, p, grad, tensors, step, how)


def apply(
    opt: Optimizer,
    h: Hyper,
    param: Tensor,
    grad: Tensor,
    state: dict[str, Tensor],
    step: Any,
    how: Plan,
) -> None:
    """One tensor's update: nnopt's native kernel if it can, else the eager composition."""
    if (
        how.native is not None
        and type(param) in _PLAIN
        and _same_layout(param, grad, *_shaped(opt, state))
        and kernels.cpu.run_one(how.native, param, grad.neg() if h.maximize else grad, state, step)
    ):
        return
    if h.maximize:
        grad = grad.neg()
    if h.coupled:
        grad = rules.with_l2(grad, param, l2=h.coupled)
    if h.decoupled:
        rules.decoupled_decay_(param, lr=h.lr, weight_decay=h.decoupled)
    divisor = opt.update(how.options, h, param, grad, state, step)
    if h.l1:
        rules.soft_threshold_(param, h.l1 * h.lr / divisor)


def _shaped(opt: Optimizer, state: dict[str, Tensor]) -> list[Tensor]:
    """The state tensors shaped like the parameter (not its scalars)."""
    if not opt.scalar_state:
        return list(state.values())
    return [t for k, t in state.items() if k not in opt.scalar_state]


def step_flat(
    opt: Optimizer, group: dict[str, Any], h: Hyper, how: Plan, layout: FlatLayout
) -> None:
    """One step of a group held in flat buffers: a few launches per bucket, then the loose
    tensors (those that cannot be packed) one by one. A whole-tensor group's parameters live
    in the buffers but are stepped one by one, each a view in its own shape."""
    if opt.whole_tensors(group):
        step_group(opt, group, h, how)
        return
    for bucket in layout.buckets:
        _step_bucket(opt, group, h, how, bucket)
    if layout.loose:
        step_group(opt, group, h, how, layout.loose)


def _step_bucket(
    opt: Optimizer, group: dict[str, Any], h: Hyper, how: Plan, bucket: FlatBucket
) -> None:
    active = bucket.prepare()
    if not any(active):
        return
    keys = opt.state_keys(group)
    if not bucket.state_bound or tuple(bucket.state) != keys:
        # First step, a loaded state dict, or options that changed the state kept.
        bucket.state = {k: v for k, v in bucket.state.items() if k in keys}
        initial = {k: opt.initial_state(group, k) for k in keys}
        bucket.bind_state(initial, opt.state, opt.uses_step, active, opt.scalar_state)
    elif bucket.unregistered:
        bucket.register(active, opt.state)
    # Not meta tensors: torch's fused kernel fails there.
    fused = how.fused and _fused_kind(opt, bucket.param)
    for first, last in bucket.runs(active):
        if opt.uses_step:
            step = bucket.advance_steps(first, last)
        else:  # as step_group: 1 on the first step of the state, else 2
            step = 1 if first in bucket.fresh else 2
        param = bucket.segment(bucket.param, first, last)
        grad = bucket.segment(bucket.grad, first, last)
        state = {k: bucket.segment(v, first, last) for k, v in bucket.state.items()}
        state.update(bucket.run_scalars(first, last))
        if fused:
            count = torch.tensor(float(step), dtype=torch.float32, device=param.device)
            steps = [count] if opt.uses_step else []
            opt.fused(how.options, h, [param], [grad], [state], steps, step == 1)
        else:
            apply(opt, h, param, grad, state, step, how)
        bucket.spread_scalars(first, last)
    if bucket.fresh:
        bucket.fresh = {i for i in bucket.fresh if not active[i]}


def _fused_kind(opt: Optimizer, param: Tensor) -> bool:
    """Whether PyTorch's fused kernel runs on this (device, dtype), exactly the rule."""
    return (
        param.device.type in _FUSED_DEVICES and not param.is_complex() and opt.fused_supports(param)
    )


def _fusable(keys: tuple, param: Tensor, grad: Tensor, state: dict) -> bool:
    """Whether PyTorch's fused kernel can take this tensor: a plain tensor, laid out like its
    gradient and state (it pairs elements by position), the gradient of its dtype and device,
    all of one size (the kernel does not check: ``p.grad.data =`` or a state tensor of the
    wrong size would be read and written out of bounds). Checked cheaply first (all
    contiguous), the strides only otherwise."""
    if type(param) not in _PLAIN or grad.dtype != param.dtype:
        return False
    if grad.get_device() != param.get_device():
        return False
    n = param.numel()
    if grad.numel() != n or any(state[k].numel() != n for k in keys):
        return False
    if param.is_contiguous() and grad.is_contiguous():
        return all(state[k].is_contiguous() for k in keys)
    return _same_layout(param, grad, *(state[k] for k in keys))


def _same_layout(param: Tensor, *others: Tensor) -> bool:
    """Whether ``others`` are laid out in memory like ``param`` (same strides).

    Kernels pair elements by memory position, so a non-contiguous parameter with a
    contiguous gradient (one the user assigned) would be updated with the wrong elements;
    such a step runs the eager rule instead. Flat buffers always qualify.
    """
    return all(t.stride() == param.stride() for t in others)
