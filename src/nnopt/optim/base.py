"""The optimizer base: everything the update rules share, written once.

Param groups, validation, ``state_dict``, ``zero_grad``, closures, L1/L2/decoupled decay,
learning-rate schedules and plateau scaling, and the choice of compute path live here. A
concrete optimizer declares its options, its state tensors, its eager rule and which kernels
compute that rule exactly (see ``sgd.py``, ``adam.py``...); ``dispatch.py`` picks the path.

Order of one update for a parameter theta with gradient g at learning rate eta (torch's):
    g <- -g                                   (maximize)
    g <- g + coupled * theta                  (coupled L2: torch's weight_decay, nnopt's l2)
    theta <- theta * (1 - eta * decoupled)    (decoupled decay: AdamW's weight_decay)
    theta, state <- rule(theta, g, state)     (returns the preconditioner d)
    theta <- soft_threshold(theta, l1 * eta / d)  (L1 proximal step, if l1 > 0)

By default every parameter keeps its own storage, as with torch.optim; ``flat=True`` packs a
group's parameters into one buffer (``flat.py``), the fastest layout for many small tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from nnopt.optim import dispatch, kernels, rules
from nnopt.optim.differentiable import step_differentiable
from nnopt.optim.flat import FlatLayout
from nnopt.optim.lazy_state import Start, init_state
from nnopt.optim.lowbit import check as lowbit_check
from nnopt.optim.lowbit import forms as lowbit_forms
from nnopt.optim.lowbit import step as lowbit_step
from nnopt.optim.options import Hyper, check_options, scalar
from nnopt.optim.state_dicts import StateDicts
from nnopt.optim.validation import check_type
from nnopt.schedules import Schedule


class Optimizer(StateDicts, torch.optim.Optimizer):
    """Base of every nnopt optimizer; a drop-in ``torch.optim.Optimizer``.

    A subclass sets ``uses_step`` and implements :meth:`state_keys` and :meth:`update` (the
    eager rule), and declares its kernels: :meth:`native_kernel` (nnopt's one-pass kernel) and
    :meth:`fused` with :meth:`fused_covers` (PyTorch's multi-tensor fused kernel, where it
    computes exactly the rule).
    """

    uses_step: bool = False  # keep torch's per-tensor "step" counter in the state
    rule_reads_step: bool = True  # whether update/native read it (RMSprop only keeps it)
    eager_state: bool = False  # create state in the constructor (torch's Adagrad does)
    # The rule reads each parameter's shape (SOAP): with flat=True the buffers still hold the
    # memory, but the step goes parameter by parameter, never over a segment of several.
    whole_parameters: bool = False
    # Per-tensor scalars the rule keeps beside "step" (NAdam's mu_product), name -> start:
    # one-element tensors of the step counter's dtype, on the CPU, as torch keeps them. A
    # plain dict, never mutated (torch.compile breaks its graph on a mappingproxy, once per
    # parameter).
    scalar_state: ClassVar[Mapping[str, float]] = {}
    # Rule options that change every step (schedule-free's averaging weight): written into
    # the native kernel's block each step instead of keying a new block.
    step_fields: tuple[str, ...] = ()

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any], *, flat: bool = False):
        check_type("flat", flat, (bool,))
        # torch checks every option before it looks at params (a bad lr with params=None
        # raises the lr error, not a TypeError), and so does nnopt.
        options = dict(defaults)
        if callable(options["lr"]) and not isinstance(options["lr"], Tensor):
            options["lr"] = 0.0  # a schedule: each value it gives is checked when it is used
        check_options(options)
        self.validate_group(options)
        if isinstance(params, Tensor):
            raise TypeError(
                "params must be an iterable of Tensors or dicts (e.g. model.parameters()), "
                f"got a single {type(params).__name__} (torch.optim: params argument given "
                "to the optimizer should be an iterable of Tensors or dicts, but got "
                f"{torch.typename(params)})"
            )
        params = list(params)
        if not params:
            raise ValueError(
                "params is empty: pass model.parameters() or a non-empty list of param groups "
                "(torch.optim: optimizer got an empty parameter list)"
            )
        self.flat = flat
        self.kernels = "auto"
        self.plateau: Any = None
        self._pad_to = 1  # flat buffers padded to a multiple of this (set by sharding)
        self._step_index = 0
        self._flat_layouts: list[FlatLayout] = []
        self._lr_override: Schedule | None = None
        self._loading: list[dict[str, Any]] | None = None  # groups before a load_state_dict
        self._check_fused = True  # torch checks fused=True's device and dtype once
        super().__init__(params, defaults)

    # --- what a concrete optimizer provides ---------------------------------------------

    def validate_group(self, group: dict[str, Any]) -> None:
        """Raise ValueError for options out of range in one param group."""

    def state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        """Names of the state tensors (shaped like the parameter) this group's rule keeps."""
        return ()

    def whole_tensors(self, group: dict[str, Any]) -> bool:
        """Whether this group's rule reads each parameter whole, in its own shape (matrix
        products, row and column norms): then it is stepped parameter by parameter by the eager
        rule, its state made by :meth:`start_state` and shaped as the rule wants (no kernels;
        with ``flat=True`` the parameters live in the buffer but are stepped as views)."""
        return False

    def start_state(self, group: dict[str, Any], param: Tensor) -> dict[str, Tensor]:
        """A whole-tensor group's state of ``param`` at its first step ("step": a counter)."""
        raise NotImplementedError

    def initial_state(self, group: dict[str, Any], key: str) -> Start:
        """The value a state tensor starts at (0 unless the rule says otherwise), or
        ``COPY_OF_PARAM``: a copy of the parameter (schedule-free's z starts at theta)."""
        return 0.0

    def hyper(self, group: dict[str, Any], lr: float | Tensor, tensors: bool = False) -> Hyper:
        """What ``group``'s update needs this step beside the rule's options (the lr and the
        regularization the base applies): torch's meaning of ``weight_decay`` unless a class
        whose rule owns its decay, or scales its lr (a warm-up), says otherwise."""
        return Hyper.of(group, lr, tensors)

    def rule_options(self, group: dict[str, Any], h: Hyper) -> dict[str, Any]:
        """The rule's own options for this step (Adam: beta1, beta2, eps, amsgrad), read from
        the group once and handed alike to :meth:`update`, :meth:`native_kernel`,
        :meth:`fused_covers` and :meth:`fused` (``h.number`` turns a Tensor option into what
        the step takes)."""
        return {}

    def update(
        self,
        o: dict[str, Any],
        h: Hyper,
        param: Tensor,
        grad: Tensor,
        state: dict[str, Tensor],
        step: int,
    ) -> rules.Divisor:
        """Apply the rule in place and return its preconditioner d (see ``rules``).

        ``step`` is the tensor's step count from 1 (optimizers without ``uses_step`` get 1 on
        the first step of their state and 2 afterwards). ``grad`` already includes maximize
        and coupled L2; the base applies decoupled decay before and L1 after.
        """
        raise NotImplementedError

    def native_kernel(self, o: dict[str, Any]) -> kernels.cpu.Kernel | None:
        """nnopt's native kernel for the rule with options ``o`` (the values of the rule's own
        fields in its ``NNOPT_RULE`` block), or None where it has none for these options.
        A function of ``o`` alone: the lr, the step count and the regularization go into the
        fields every block has, and the result is reused while ``o`` and the regularization
        stay the same. Every optimizer declares it (None: no native kernel), so that a
        missing kernel is a decision, not an omission."""
        raise NotImplementedError(f"{type(self).__name__} declares no native_kernel")

    def fused_covers(self, o: dict[str, Any], h: Hyper) -> bool:
        """Whether PyTorch's fused kernel computes exactly this group's update. Every optimizer
        declares it (False where torch has no fused kernel for the rule)."""
        raise NotImplementedError(f"{type(self).__name__} declares no fused_covers")

    def fused_supports(self, param: Tensor) -> bool:
        """Whether PyTorch's fused kernel is correct for this tensor's dtype and device."""
        return True

    def fused(
        self,
        o: dict[str, Any],
        h: Hyper,
        params: list[Tensor],
        grads: list[Tensor],
        states: list[dict[str, Tensor]],
        steps: list[Tensor],
        first: bool,
    ) -> None:
        """The whole update of many tensors in PyTorch's fused kernel (``fused_covers`` held)."""
        raise NotImplementedError

    # --- param groups -------------------------------------------------------------------

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        lr = param_group.get("lr", self.defaults.get("lr"))
        if callable(lr) and not isinstance(lr, Tensor):
            param_group["schedule"] = lr
            param_group["lr"] = float(lr(self._step_index))
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        check_options(group)
        group["base_lr"] = scalar(group["lr"])
        for i, p in enumerate(group["params"]):
            if not (p.is_floating_point() or p.is_complex()):
                raise ValueError(
                    f"params[{i}] has dtype {p.dtype}; only floating-point or complex "
                    "tensors can be optimized"
                )
        self.validate_group(group)
        lowbit_check.check_group(self, group, flat=self.flat)
        if self.eager_state:
            for p in group["params"]:
                init_state(self, group, p, self.state[p])
        if self.flat:
            self._flat_layouts.append(FlatLayout(_packed(group), self._pad_to))

    @property
    def kernels(self) -> str:
        """Which kernels may compute the update: "auto" (PyTorch's fused kernels where their
        math is exactly the rule, else nnopt's native kernel, else the eager rule), "native"
        or "torch" (only that family, or the eager rule), "eager" (always the rule itself, the
        reference the kernels match). Checked when set."""
        return self._kernels

    @kernels.setter
    def kernels(self, mode: str) -> None:
        self._kernels = kernels.check_mode(mode)

    # --- learning rate ------------------------------------------------------------------

    def current_lr(self, group: dict[str, Any], tensor: bool = False) -> float | Tensor:
        """The lr for this step: schedule(step) or the base lr, times the plateau scale.

        With neither a schedule nor a plateau controller, ``group["lr"]`` is used as it is,
        so torch's LR schedulers and manual edits keep working (a Tensor lr is returned as
        the Tensor itself with ``tensor=True``, else as a float).
        """
        schedule = self._lr_override or group.get("schedule")
        if schedule is None and self.plateau is None:
            lr = group["lr"]
            return lr if tensor and isinstance(lr, Tensor) else scalar(lr)
        lr = float(schedule(self._step_index)) if schedule is not None else group["base_lr"]
        if self.plateau is not None and self._lr_override is None:
            lr = max(lr * self.plateau.scale, getattr(self.plateau, "min_lr", 0.0))
        if not math.isfinite(lr) or lr < 0:
            raise ValueError(
                f"the schedule gave lr={lr} at step {self._step_index}; it must be >= 0"
            )
        group["lr"] = lr
        return lr

    def override_lr(self, schedule: Schedule | None) -> None:
        """Set every group's lr from ``schedule(step)`` instead of its own schedule and the
        plateau controller, until called with None (the lr range test's seam)."""
        self._lr_override = schedule

    # --- the step -----------------------------------------------------------------------

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step; ``closure`` re-evaluates the loss, as in torch.

        As torch's, the step runs under autograd only for a ``differentiable=True`` optimizer
        (whose groups take the eager rule, see ``differentiable.py``).
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.set_grad_enabled(bool(self.defaults.get("differentiable", False))):
            for index, group in enumerate(self.param_groups):
                if group.get("fused") and getattr(self, "_check_fused", True):
                    self._check_fused_devices(group)
                differentiable = bool(group.get("differentiable"))
                # Tensor options stay Tensors where autograd must see them, and while
                # torch.compile traces (.item() would break the graph; a Tensor lr that a
                # scheduler changes in place is then read at every call, not baked in).
                tensors = differentiable or torch.compiler.is_compiling()
                h = self.hyper(group, self.current_lr(group, tensors), tensors)
                if differentiable:
                    step_differentiable(self, group, h)
                    continue
                how = dispatch.plan(self, group, h)
                if lowbit_forms.active(group):
                    lowbit_step.step_group(self, group, h, how)
                elif self.flat and not self.whole_parameters:
                    dispatch.step_flat(self, group, h, how, self._intact_layout(index))
                else:
                    dispatch.step_group(self, group, h, how)
        self._step_index += 1
        return loss

    def _check_fused_devices(self, group: dict[str, Any]) -> None:
        """fused=True asks for a fused kernel, which runs only on floating-point tensors of
        real devices: refuse others (meta tensors) with torch's error, once, as torch does."""
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.device.type not in FUSED_DEVICES or not p.is_floating_point():
                raise RuntimeError(
                    f"fused=True needs floating-point parameters on a device with fused "
                    f"kernels ({', '.join(FUSED_DEVICES)}); pass fused=None for this one "
                    "(torch.optim: `fused=True` requires all the params to be floating point "
                    f"Tensors of supported devices: {list(FUSED_DEVICES)} but {p.dtype} and "
                    f"{p.device.type})"
                )
            self._check_fused = False
            return

    def _intact_layout(self, index: int) -> FlatLayout:
        """Group ``index``'s flat layout, rebuilt if a parameter left its buffer (p.data=,
        .to()) or the group's parameter list changed (``group["params"].append(p)``).

        ``model.to()`` also re-points each gradient view's data, so a stale layout would zero
        its old buffer in ``zero_grad``: both ``step`` and ``zero_grad`` go through here.
        """
        layout = self._flat_layouts[index]
        params = _packed(self.param_groups[index])
        if not layout.is_intact(params):
            layout = self._flat_layouts[index] = FlatLayout(params, self._pad_to)
        return layout

    # --- seams for layout strategies (sharding) ------------------------------------------

    def pack(self, pad_to: int = 1) -> list[FlatLayout]:
        """Hold every group in flat buffers padded to a multiple of ``pad_to`` (as FSDP pads
        to the world size) and return the layouts, one per group."""
        self.flat, self._pad_to = True, pad_to
        self._flat_layouts = [FlatLayout(_packed(g), pad_to) for g in self.param_groups]
        return self._flat_layouts

    def update_tensor(
        self,
        group: dict[str, Any],
        param: Tensor,
        grad: Tensor,
        state: dict[str, Tensor],
        step: int,
        lr: float,
    ) -> None:
        """One tensor's whole update (regularization included) at ``lr``, by the path the
        optimizer's ``kernels`` mode picks; ``state`` holds tensors shaped like ``param``."""
        h = self.hyper(group, lr)
        dispatch.apply(self, h, param, grad, state, step, dispatch.plan(self, group, h))

    def finish_step(self) -> None:
        """Count one step taken outside :meth:`step` (the step a schedule sees next)."""
        self._step_index += 1

    # --- gradients ----------------------------------------------------------------------

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset gradients, as torch: ``set_to_none=True`` (the default) sets every gradient
        to None, so a parameter without a gradient next step is skipped; ``False`` zeroes
        them in place (with ``flat=True`` in one pass over the buffer, which stays attached).
        """
        if self.flat and not set_to_none:
            for index in range(len(self._flat_layouts)):
                self._intact_layout(index).zero_grads()
            return
        super().zero_grad(set_to_none=set_to_none)

    def __getstate__(self) -> dict[str, Any]:
        # torch's optimizer pickles only defaults/state/param_groups; keep ours too.
        state = super().__getstate__()
        names = ("flat", "_kernels", "plateau", "_pad_to", "_step_index", "_flat_layouts")
        for name in (*names, "_check_fused"):
            state[name] = self.__dict__[name]
        state["_lr_override"] = None
        state["_loading"] = None
        return state

    @property
    def step_count(self) -> int:
        """Number of steps taken (the step a schedule sees next)."""
        return self._step_index

    def flat_buffers(self) -> list:
        """The flat buckets of every group (empty unless ``flat=True``)."""
        return [b for layout in self._flat_layouts for b in layout.buckets]


# Devices with fused optimizer kernels, as torch lists them (torch 2.13).
FUSED_DEVICES = ("mps", "cuda", "xpu", "hpu", "cpu", "mtia")


def _packed(group: dict[str, Any]) -> list[Tensor]:
    """The parameters a flat layout holds: none of a differentiable group (its step is the
    eager rule on the parameters themselves)."""
    return [] if group.get("differentiable") else group["params"]


def constructor_options(arguments: dict[str, Any]) -> dict[str, Any]:
    """A twin's constructor arguments (its ``locals()``) as param-group defaults: every
    option once, as the signature names it, without ``params`` and the storage flag."""
    return {k: v for k, v in arguments.items() if k not in _NOT_GROUP_OPTIONS}


_NOT_GROUP_OPTIONS = frozenset({"self", "params", "flat", "__class__"})
