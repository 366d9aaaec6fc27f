"""Flat buffers: the parameters, gradients and state of one (device, dtype, group) as views of
one contiguous tensor each, so that an optimizer step is a few kernel launches over the whole
buffer instead of a few per parameter tensor.

A bucket never trusts that its views are still in place. Before every step it checks that
each parameter still lives in the buffer (``p.data`` reassigned, ``model.to()``, deepcopy all
break that) and that each gradient is the view it handed out (``model.zero_grad()`` and
user assignments replace it); see :meth:`FlatBucket.prepare`.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Mapping
from types import MappingProxyType

import torch
from torch import Tensor

from nnopt.optim.lazy_state import COPY_OF_PARAM, Start, fill_start, new_state
from nnopt.optim.options import step_dtype


def packable(p: Tensor) -> bool:
    """Whether a parameter can live in a flat buffer: dense, real, contiguous and trainable."""
    return (
        p.requires_grad
        and p.layout == torch.strided
        and p.is_floating_point()
        and p.is_contiguous()
        and p.numel() > 0
    )


class FlatBucket:
    """Parameters of one (device, dtype, param group) packed into one contiguous buffer."""

    def __init__(self, params: list[Tensor], pad_to: int = 1) -> None:
        first = params[0]
        self.params = params
        self.device, self.dtype = first.device, first.dtype
        self.shapes = [p.shape for p in params]
        self.numels = [p.numel() for p in params]
        self.offsets = [0]
        for n in self.numels:
            self.offsets.append(self.offsets[-1] + n)
        # Padding to a multiple of pad_to lets a sharded optimizer split the buffer evenly
        # across ranks (as FSDP does); the padding is zero and never seen by a parameter.
        self.padded_numel = -(-self.offsets[-1] // pad_to) * pad_to
        with torch.no_grad():
            self.padded_param = torch.zeros(self.padded_numel, device=self.device, dtype=self.dtype)
            self.param = self.padded_param[: self.offsets[-1]]
            torch.cat([p.detach().reshape(-1) for p in params], out=self.param)
            for p, view in zip(params, self.views(self.param), strict=True):
                p.data = view
        self.param_ptrs = [p.data_ptr() for p in params]
        self.padded_grad = torch.zeros_like(self.padded_param)
        self.grad = self.padded_grad[: self.offsets[-1]]
        self.grad_views = self.views(self.grad)
        self.state: dict[str, Tensor] = {}
        self.state_views: dict[str, list[Tensor]] = {}
        self.steps: Tensor | None = None  # one float32 counter per parameter, torch's "step"
        self.step_views: list[Tensor] = []
        self.uniform_step: int | None = None  # the common step when all counters agree
        # Per-parameter scalars beside the counters (NAdam's mu_product), one element each.
        self.scalars: dict[str, Tensor] = {}
        self.scalar_views: dict[str, list[Tensor]] = {}
        self.state_bound = False
        self.unregistered: set[int] = set()  # params whose state views are not handed out yet
        self.copies: set[str] = set()  # state that starts as a copy of its parameter
        # Params whose state was just created and not stepped yet: a rule whose first step is
        # special (SGD's dampening: b <- g) reads it when the bucket keeps no step counters.
        self.fresh: set[int] = set()
        self._all_active = [True] * len(params)

    def __len__(self) -> int:
        return len(self.params)

    @property
    def numel(self) -> int:
        return self.offsets[-1]

    def views(self, flat: Tensor) -> list[Tensor]:
        """Per-parameter views of a flat tensor laid out like this bucket."""
        return [
            flat[start:end].view(shape)
            for start, end, shape in zip(self.offsets, self.offsets[1:], self.shapes, strict=False)
        ]

    def segment(self, flat: Tensor, first: int, last: int) -> Tensor:
        """The slice of ``flat`` holding parameters ``first`` to ``last - 1``."""
        return flat[self.offsets[first] : self.offsets[last]]

    def is_intact(self) -> bool:
        """False when any parameter's storage moved out of the buffer (p.data=, .to(), copy)."""
        return list(map(_data_ptr, self.params)) == self.param_ptrs

    def prepare(self) -> list[bool]:
        """Bring gradients into the flat buffer; return which parameters have one this step.

        A gradient that is the bucket's own view costs nothing. A foreign gradient (after
        ``model.zero_grad()`` and a backward, or an assignment) is copied in once and replaced
        by the view, so the next backward accumulates straight into the buffer. A parameter
        whose gradient is None is inactive: torch skips it, and so do we.
        """
        grads = list(map(_grad_of, self.params))
        views = self.grad_views
        if all(map(operator.is_, grads, views)):
            return self._all_active
        active = []
        foreign_src, foreign_dst = [], []
        for p, g, view in zip(self.params, grads, views, strict=True):
            if g is None:
                active.append(False)
                continue
            active.append(True)
            if g is not view:
                if g.is_sparse:
                    g = g.to_dense()
                foreign_src.append(g)
                foreign_dst.append(view)
                p.grad = view
        if foreign_dst:
            torch._foreach_copy_(foreign_dst, foreign_src)
        return active

    def bind_state(
        self,
        initial: dict[str, Start],
        per_param: dict,
        with_step: bool,
        active: list[bool],
        scalars: Mapping[str, float] = MappingProxyType({}),
    ) -> None:
        """Make ``per_param[p][key]`` views of flat state, keeping any values already there.

        ``initial`` maps each state name to its starting value. Values present (loaded from
        a state dict, or left by a previous bucket) are copied in; missing ones start at their
        initial value, as torch's lazily created state does. A parameter with no state and no
        gradient this step gets none yet (torch gives it none): :meth:`register` adds its
        views the first time it is stepped. ``scalars`` (name -> start) are per-parameter
        one-element state beside the step counters, bound as they are.
        """
        self.unregistered = set()
        self.copies = {k for k, start in initial.items() if start == COPY_OF_PARAM}
        for key, start in initial.items():
            flat = self.state.get(key)
            if flat is None:
                flat = new_state(self.param, start)
                self.state[key] = flat
                self.state_views[key] = self.views(flat)
            for i, (p, view) in enumerate(zip(self.params, self.state_views[key], strict=True)):
                held = per_param[p].get(key) if p in per_param else None
                if held is view:
                    continue
                if held is None:
                    fill_start(view, start, p)
                    if not active[i]:
                        self.unregistered.add(i)
                        continue
                    self.fresh.add(i)
                else:
                    view.copy_(held)
                per_param[p][key] = view
        if with_step:
            if self.steps is None:
                self.steps = torch.zeros(len(self.params), dtype=step_dtype())
                self.step_views = list(self.steps.unbind())
            for i, (p, view) in enumerate(zip(self.params, self.step_views, strict=True)):
                held = per_param[p].get("step") if p in per_param else None
                if held is view:
                    continue
                view.fill_(0.0 if held is None else float(held))
                if held is None and not active[i]:
                    self.unregistered.add(i)
                    continue
                per_param[p]["step"] = view
            first, last = self.steps.min().item(), self.steps.max().item()
            self.uniform_step = int(first) if first == last else None
        for name, start in scalars.items():
            if name not in self.scalars:
                self.scalars[name] = torch.full((len(self.params),), start, dtype=step_dtype())
                self.scalar_views[name] = list(self.scalars[name].unbind())
            for i, (p, view) in enumerate(zip(self.params, self.scalar_views[name], strict=True)):
                held = per_param[p].get(name) if p in per_param else None
                if held is view:
                    continue
                view.fill_(start if held is None else float(held))
                if held is None and not active[i]:
                    self.unregistered.add(i)
                    continue
                per_param[p][name] = view
        self.state_bound = True

    def hold_state(self, key: str, flat: Tensor, per_param: dict) -> None:
        """Hold ``flat`` (the whole bucket's ``key`` state, e.g. gathered from the ranks of a
        sharded optimizer) and make each parameter's ``per_param[p][key]`` a view of it."""
        self.state[key] = flat
        self.state_views[key] = self.views(flat)
        for p, view in zip(self.params, self.state_views[key], strict=True):
            per_param[p][key] = view

    def clear_state(self) -> None:
        """Drop the flat state (the next step binds it afresh from the per-parameter state)."""
        self.state, self.state_views, self.state_bound = {}, {}, False
        self.scalars, self.scalar_views = {}, {}

    def register(self, active: list[bool], per_param: dict) -> None:
        """Give the parameters stepped for the first time their state views."""
        for i in [i for i in self.unregistered if active[i]]:
            p = self.params[i]
            for key, views in self.state_views.items():
                if key in self.copies:  # (its start is the parameter now, not at binding)
                    views[i].copy_(p)
                per_param[p][key] = views[i]
            if self.steps is not None:
                per_param[p]["step"] = self.step_views[i]
            for name, views in self.scalar_views.items():
                per_param[p][name] = views[i]
            self.unregistered.discard(i)
            self.fresh.add(i)

    def runs(self, active: list[bool]) -> list[tuple[int, int]]:
        """Maximal runs [first, last) of consecutive active parameters sharing one step count
        and the same scalars (and, for buckets without counters, all fresh or all not)."""
        uniform = self.steps is None or self.uniform_step is not None
        uniform = uniform and all(bool((t == t[0]).all()) for t in self.scalars.values())
        if uniform and not self.fresh and (active is self._all_active or all(active)):
            return [(0, len(self.params))]
        steps: list = self.steps.tolist() if self.steps is not None else [0] * len(self.params)
        if self.scalars:  # a run shares its scalars too: compare (step, *scalars)
            columns = [steps, *(t.tolist() for t in self.scalars.values())]
            steps = list(zip(*columns, strict=True))
        fresh = self.fresh
        runs: list[tuple[int, int]] = []
        start = None
        for i, on in enumerate(active):
            if start is not None and (
                not on or steps[i] != steps[start] or (i in fresh) != (start in fresh)
            ):
                runs.append((start, i))
                start = None
            if on and start is None:
                start = i
        if start is not None:
            runs.append((start, len(active)))
        return runs

    def run_scalars(self, first: int, last: int) -> dict[str, Tensor]:
        """The scalars of run [first, last) as the rule takes them: the first parameter's,
        which :meth:`spread_scalars` copies to the rest of the run after the update."""
        return {name: t[first : first + 1] for name, t in self.scalars.items()}

    def spread_scalars(self, first: int, last: int) -> None:
        if last - first > 1:
            for t in self.scalars.values():
                t[first + 1 : last] = t[first]

    def advance_steps(self, first: int, last: int) -> int:
        """Add one to the step counters of a run and return the run's new step."""
        assert self.steps is not None
        run = self.steps[first:last]
        run.add_(1)
        if first == 0 and last == len(self.params) and self.uniform_step is not None:
            self.uniform_step += 1
            return self.uniform_step
        self.uniform_step = None
        step = int(run[0].item())
        if self.steps.min().item() == self.steps.max().item():
            self.uniform_step = step
        return step


_data_ptr = torch.Tensor.data_ptr
_grad_of = operator.attrgetter("grad")


class FlatLayout:
    """How one param group is stored with ``flat=True``: flat buckets by (device, dtype),
    plus the loose tensors that cannot be packed (sparse, complex, non-contiguous, frozen),
    which are stepped one by one."""

    def __init__(self, params: list[Tensor], pad_to: int = 1) -> None:
        self.param_ids = list(map(id, params))
        by_kind: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
        self.loose: list[Tensor] = []
        # A parameter listed twice is stepped twice, one after the other, as torch does: that
        # is the per-tensor path's job, so every copy of it stays loose.
        counts = Counter(self.param_ids)
        for p in params:
            if packable(p) and counts[id(p)] == 1:
                by_kind.setdefault((p.device, p.dtype), []).append(p)
            else:
                self.loose.append(p)
        self.buckets = [FlatBucket(ps, pad_to) for ps in by_kind.values()]

    def is_intact(self, params: list[Tensor]) -> bool:
        """False when the group's parameter list changed or a parameter left its buffer."""
        return list(map(id, params)) == self.param_ids and all(b.is_intact() for b in self.buckets)

    def zero_grads(self) -> None:
        """Zero every gradient in place: one pass per bucket, which stays attached."""
        for bucket in self.buckets:
            bucket.grad.zero_()
            for p, view in zip(bucket.params, bucket.grad_views, strict=True):
                if p.grad is not None and p.grad is not view:
                    _zero_in_place(p)
        for p in self.loose:
            if p.grad is not None:
                _zero_in_place(p)

    def unbind_state(self) -> None:
        """Re-read the per-parameter state at the next step (after ``load_state_dict``)."""
        for bucket in self.buckets:
            bucket.state_bound = False


def _zero_in_place(param: Tensor) -> None:
    if param.grad.grad_fn is not None:
        param.grad.detach_()
    else:
        param.grad.requires_grad_(False)
    param.grad.zero_()
