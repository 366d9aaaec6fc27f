"""The optimizer base: everything the update rules share, written once.

Param groups, validation, ``state_dict``, ``zero_grad``, closures, L1/L2/decoupled decay,
learning-rate schedules and plateau scaling, and the flat buffers all live here. A concrete
optimizer only names its state tensors and calls its rule (see ``sgd.py``, ``adam.py``...).

Order of one update for a parameter theta with gradient g at learning rate eta:
    g <- g + l2 * theta                       (coupled L2, if l2 > 0)
    theta <- theta * (1 - eta * weight_decay) (decoupled decay, if weight_decay > 0)
    theta, state <- rule(theta, g, state)     (returns the preconditioner d)
    theta <- soft_threshold(theta, l1 * eta / d)  (L1 proximal step, if l1 > 0)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from nnopt.optim import rules
from nnopt.optim.flat import FlatBucket, group_buckets, packable
from nnopt.optim.validation import check_nonnegative, check_type

Schedule = Callable[[int], float]


@dataclass
class GroupLayout:
    """How one param group is stored: flat buckets, plus loose tensors stepped one by one."""

    buckets: list[FlatBucket] = field(default_factory=list)
    loose: list[Tensor] = field(default_factory=list)


class Optimizer(torch.optim.Optimizer):
    """Base of every nnopt optimizer; a drop-in ``torch.optim.Optimizer``.

    Subclasses set ``uses_step`` and implement :meth:`state_keys`, :meth:`update` and, when a
    PyTorch fused kernel computes exactly their rule, :meth:`fused_update`.
    """

    uses_step: bool = False

    def __init__(
        self,
        params: Iterable[Any],
        defaults: dict[str, Any],
        *,
        flat: bool | None = None,
    ) -> None:
        check_type("flat", flat, (bool, type(None)))
        for name in ("l1", "l2", "weight_decay"):
            check_nonnegative(name, defaults[name])
        params = list(params)
        if not params:
            raise ValueError(
                "params is empty: pass model.parameters() or a non-empty list of param groups"
            )
        self.flat = flat
        # "auto" uses PyTorch's fused kernels where their math is exactly the rule;
        # "eager" always runs the rule itself (the reference the kernels are tested against).
        self.kernels = "auto"
        self.plateau: Any = None
        self._pad_to = 1  # flat buffers padded to a multiple of this (set by sharding)
        self._step_index = 0
        self._layouts: list[GroupLayout] = []
        super().__init__(params, defaults)

    # --- what a concrete optimizer provides ---------------------------------------------

    def validate_group(self, group: dict[str, Any]) -> None:
        """Raise ValueError for options out of range in one param group."""

    def state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        """Names of the state tensors (shaped like the parameter) this group's rule keeps."""
        return ()

    def initial_state(self, group: dict[str, Any], key: str) -> float:
        """The value a state tensor starts at (0 unless the rule says otherwise)."""
        return 0.0

    def update(
        self,
        group: dict[str, Any],
        param: Tensor,
        grad: Tensor,
        state: dict[str, Tensor],
        step: int,
        lr: float,
    ) -> rules.Divisor:
        """Apply the rule in place and return its preconditioner d (see ``rules``)."""
        raise NotImplementedError

    def fused_update(
        self,
        group: dict[str, Any],
        param: Tensor,
        grad: Tensor,
        state: dict[str, Tensor],
        step: int,
        lr: float,
    ) -> bool:
        """Do the whole update (regularization included) in a fused kernel, if one fits."""
        return False

    # --- param groups -------------------------------------------------------------------

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        lr = param_group.get("lr", self.defaults.get("lr"))
        if callable(lr):
            param_group["schedule"] = lr
            param_group["lr"] = float(lr(self._step_index))
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        check_nonnegative("lr", group["lr"])
        for name in ("l1", "l2", "weight_decay"):
            check_nonnegative(name, group[name])
        group["base_lr"] = group["lr"]
        for i, p in enumerate(group["params"]):
            if not (p.is_floating_point() or p.is_complex()):
                raise ValueError(
                    f"params[{i}] has dtype {p.dtype}; only floating-point or complex "
                    "tensors can be optimized"
                )
        self.validate_group(group)
        self._layouts.append(self._layout(group["params"]))

    def _layout(self, params: list[Tensor]) -> GroupLayout:
        if self.flat is False:
            return GroupLayout(loose=list(params))
        buckets, loose = group_buckets(params, self._pad_to)
        if self.flat is True:
            for p in loose:
                if p.requires_grad and not packable(p):
                    raise ValueError(
                        f"flat=True but a parameter of shape {tuple(p.shape)} and dtype "
                        f"{p.dtype} cannot be packed (it must be dense, real, contiguous); "
                        "use flat=None to step such tensors one by one"
                    )
        return GroupLayout(buckets, loose)

    # --- learning rate ------------------------------------------------------------------

    def _current_lr(self, group: dict[str, Any]) -> float:
        """The lr for this step: schedule(step) or the base lr, times the plateau scale.

        With neither a schedule nor a plateau controller, ``group["lr"]`` is used as it is,
        so torch's LR schedulers and manual edits keep working.
        """
        schedule = group.get("schedule")
        if schedule is None and self.plateau is None:
            return group["lr"]
        lr = float(schedule(self._step_index)) if schedule is not None else group["base_lr"]
        if self.plateau is not None:
            lr = max(lr * self.plateau.scale, getattr(self.plateau, "min_lr", 0.0))
        if not math.isfinite(lr) or lr < 0:
            raise ValueError(
                f"the schedule gave lr={lr} at step {self._step_index}; it must be >= 0"
            )
        group["lr"] = lr
        return lr

    # --- the step -----------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step; ``closure`` re-evaluates the loss, as in torch."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for index, group in enumerate(self.param_groups):
            lr = self._current_lr(group)
            layout = self._intact_layout(index)
            for bucket in layout.buckets:
                self._step_bucket(group, bucket, lr)
            for param in layout.loose:
                self._step_tensor(group, param, lr)
        self._step_index += 1
        return loss

    def _intact_layout(self, index: int) -> GroupLayout:
        """Group ``index``'s layout, rebuilt if a parameter left its buffer (p.data=, .to()).

        ``model.to()`` also re-points each gradient view's data (``grad.data = ...``), so a
        stale layout would zero its old buffer in ``zero_grad`` while the live gradients kept
        their values: both ``step`` and ``zero_grad`` go through here.
        """
        layout = self._layouts[index]
        if any(not b.is_intact() for b in layout.buckets):
            layout = self._layouts[index] = self._layout(self.param_groups[index]["params"])
        return layout

    def _step_bucket(self, group: dict[str, Any], bucket: FlatBucket, lr: float) -> None:
        active = bucket.prepare()
        if not any(active):
            return
        keys = self.state_keys(group)
        if not bucket.state_bound or tuple(bucket.state) != keys:
            # First step, a loaded state dict, or options that changed the state kept.
            bucket.state = {k: v for k, v in bucket.state.items() if k in keys}
            initial = {k: self.initial_state(group, k) for k in keys}
            bucket.bind_state(initial, self.state, self.uses_step)
        for first, last in bucket.runs(active):
            step = bucket.advance_steps(first, last) if self.uses_step else 0
            state = {k: bucket.segment(v, first, last) for k, v in bucket.state.items()}
            self._apply(
                group,
                bucket.segment(bucket.param, first, last),
                bucket.segment(bucket.grad, first, last),
                state,
                step,
                lr,
            )

    def _step_tensor(self, group: dict[str, Any], param: Tensor, lr: float) -> None:
        grad = param.grad
        if grad is None:
            return
        if grad.is_sparse:
            grad = grad.to_dense()
        state = self.state[param]
        for key in self.state_keys(group):
            if key not in state:
                start = self.initial_state(group, key)
                if param.is_complex():
                    # Updated as pairs of reals: both halves start at the value, as in torch.
                    start = complex(start, start)
                state[key] = torch.full_like(param, start, memory_format=torch.preserve_format)
            elif state[key].dtype != param.dtype or state[key].device != param.device:
                # The parameter was moved or cast (model.to()): its state follows it, as
                # flat buckets and torch's load_state_dict do.
                state[key] = state[key].to(param)
        step = 0
        if self.uses_step:
            if "step" not in state:
                state["step"] = torch.tensor(0.0)
            state["step"] += 1
            step = int(state["step"].item())
        tensors = {k: state[k] for k in self.state_keys(group)}
        if param.is_complex():
            # Complex numbers are updated as pairs of reals, as torch.optim does.
            param, grad = torch.view_as_real(param), torch.view_as_real(grad)
            tensors = {k: torch.view_as_real(v) for k, v in tensors.items()}
        self._apply(group, param, grad, tensors, step, lr)

    def _apply(
        self,
        group: dict[str, Any],
        param: Tensor,
        grad: Tensor,
        state: dict[str, Tensor],
        step: int,
        lr: float,
    ) -> None:
        if (
            self.kernels != "eager"
            and _same_layout(param, grad, *state.values())
            and self.fused_update(group, param, grad, state, step, lr)
        ):
            return
        l1, l2, weight_decay = group["l1"], group["l2"], group["weight_decay"]
        if l2:
            grad = rules.with_l2(grad, param, l2=l2)
        if weight_decay:
            rules.decoupled_decay_(param, lr=lr, weight_decay=weight_decay)
        divisor = self.update(group, param, grad, state, step, lr)
        if l1:
            rules.soft_threshold_(param, l1 * lr / divisor)

    # --- gradients ----------------------------------------------------------------------

    def zero_grad(self, set_to_none: bool | None = None) -> None:
        """Reset gradients.

        ``set_to_none=None`` (the default): gradients held in flat buffers are zeroed in one
        pass and stay attached, so the next backward accumulates straight into the buffer;
        other gradients are set to None, as torch does. ``True``: every gradient becomes
        None (torch's default; the next step copies fresh gradients into the buffer once).
        ``False``: every gradient is zeroed in place.
        """
        for index in range(len(self._layouts)):
            layout = self._intact_layout(index)
            for bucket in layout.buckets:
                if set_to_none is True:
                    for p in bucket.params:
                        p.grad = None
                    continue
                bucket.grad.zero_()
                for p, view in zip(bucket.params, bucket.grad_views, strict=True):
                    if p.grad is not None and p.grad is not view:
                        _reset_grad(p, to_none=set_to_none is None)
            for p in layout.loose:
                if p.grad is not None:
                    _reset_grad(p, to_none=set_to_none is not False)

    # --- checkpoints --------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """torch's state dict, plus the step counter and plateau state under ``"nnopt"``.

        Schedules are code, not data: they are left out (the optimizer being loaded into
        keeps its own), so the dict loads with ``torch.load(weights_only=True)``.
        """
        state = super().state_dict()
        for group in state["param_groups"]:
            group.pop("schedule", None)
        state["nnopt"] = {
            "step": self._step_index,
            "plateau": self.plateau.state_dict() if self.plateau is not None else None,
        }
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict from nnopt (flat or not, any number of ranks) or torch.optim.

        torch replaces each param group by the saved one. Schedules are never saved, so each
        group keeps its own; options the saved group lacks (a ``torch.optim`` state dict has
        no ``l1``/``l2``) keep their current values. The tensors are copied: loading the
        live state dict of another optimizer must not tie the two together.
        """
        state_dict = dict(state_dict)
        state_dict["state"] = copy.deepcopy(state_dict["state"])
        extra = state_dict.pop("nnopt", None)
        previous = [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups]
        super().load_state_dict(state_dict)
        for group, before in zip(self.param_groups, previous, strict=True):
            group.pop("schedule", None)
            for key, value in before.items():
                if key == "schedule" or key not in group:
                    group[key] = value
        for layout in self._layouts:
            for bucket in layout.buckets:
                bucket.state_bound = False  # the loaded tensors are copied in at the next step
        if extra is not None:
            self._step_index = int(extra["step"])
            if extra.get("plateau") is not None and self.plateau is not None:
                self.plateau.load_state_dict(extra["plateau"])

    def __getstate__(self) -> dict[str, Any]:
        # torch's optimizer pickles only defaults/state/param_groups; keep ours too.
        state = super().__getstate__()
        for name in ("flat", "kernels", "plateau", "_pad_to", "_step_index", "_layouts"):
            state[name] = self.__dict__[name]
        return state

    @property
    def step_count(self) -> int:
        """Number of steps taken (the step a schedule sees next)."""
        return self._step_index

    def flat_buffers(self) -> list[FlatBucket]:
        """The flat buckets of every group (empty with ``flat=False``)."""
        return [b for layout in self._layouts for b in layout.buckets]


def _same_layout(param: Tensor, *others: Tensor) -> bool:
    """Whether ``others`` are laid out in memory like ``param`` (same strides).

    Fused kernels pair elements by memory position, so a non-contiguous parameter with a
    contiguous gradient (one the user assigned) would be updated with the wrong elements;
    such a step runs the eager rule instead. Flat buffers always qualify.
    """
    return all(t.stride() == param.stride() for t in others)


def _reset_grad(param: Tensor, *, to_none: bool) -> None:
    if to_none:
        param.grad = None
    else:
        if param.grad.grad_fn is not None:
            param.grad.detach_()
        else:
            param.grad.requires_grad_(False)
        param.grad.zero_()
